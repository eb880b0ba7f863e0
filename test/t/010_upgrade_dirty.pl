# 010_upgrade_dirty.pl: a run that 0.4 left failed part-way resumes after
# the upgrade to the version with reject limits, set-wise quarantine and
# foreign-key cycle handling (0.5), and loads every row exactly once.
#
# The released 0.4 (commit 5be8601, the last with EXTVERSION 0.4) is built
# from the git history and installed into a private copy of the server
# (MigrateTest::released_install).  Under 0.4, role alice (not a superuser)
# runs plan "dirty" over local source tables: a parent table, and a child
# of 4000 rows of which every 20th breaks a CHECK of the target (5 %,
# quarantined by 0.4's bisection) and row 2601 fails an abort rule, so the
# run fails with 2500 child rows committed (batches of 500).  Then the
# package upgrade and ALTER EXTENSION migrate UPDATE:
#
#   - the plan, its mappings and the failed run are alice's, as they were;
#     the columns 0.5 adds have their defaults (no per-table options,
#     counters 0);
#   - alice drops the abort rule and resumes: the run loads the 1500 rows
#     0.4 had not, none twice; every bad row is quarantined once, with the
#     CHECK's SQLSTATE and message, whichever version refused it; the table
#     is above reject_warn (1 %), below reject_limit (10 %): it succeeds,
#     with a "reject warning" event;
#   - a new run of a table that now breaks the default reject limit fails
#     with 22000, which 0.4 would have called a success.

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use Cwd qw(realpath);
use MigrateTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $released = '5be8601';	# the last commit with EXTVERSION 0.4
my $repo = realpath("$FindBin::RealBin/../..");

my $real_ext = `pg_config --sharedir`;
chomp $real_ext;
my ($current) = slurp_file("$real_ext/extension/migrate.control") =~ /^default_version\s*=\s*'([^']+)'/m;
ok(defined $current && $current ne '0.4', "the installed migrate is not 0.4 (" . ($current // 'none') . ")")
  or BAIL_OUT("make install the current tree first");

my (undef, $inst, $lib, $ext) = released_install($repo, $released, '0.4');
my $node = start_node('old04', install_path => $inst, conf => { jit => 'off' });

sub as
{
	my ($role, $sql) = @_;
	my ($out, $err) = ('', '');
	$node->psql('postgres', "\\set VERBOSITY verbose\nSET client_min_messages = notice;\n$sql",
		stdout => \$out, stderr => \$err, extra_params => ['-U', $role]);
	return ($out, $err);
}

# ---- under 0.4 -------------------------------------------------------------
$node->safe_psql('postgres', q{
	SET client_min_messages = warning;
	CREATE EXTENSION migrate;
	CREATE ROLE alice LOGIN;
	CREATE SCHEMA legacy;
	CREATE TABLE legacy.parent (id int PRIMARY KEY, name text);
	INSERT INTO legacy.parent SELECT g, 'p' || g FROM generate_series(1, 100) g;
	CREATE TABLE legacy.child (id int PRIMARY KEY, parent_id int, amount numeric);
	INSERT INTO legacy.child
	SELECT g, 1 + g % 100, CASE WHEN g % 20 = 0 THEN -g WHEN g = 2601 THEN 1e9 ELSE g END
	  FROM generate_series(1, 4000) g;
	CREATE TABLE legacy.noisy (id int PRIMARY KEY, amount numeric);
	INSERT INTO legacy.noisy SELECT g, CASE WHEN g % 4 = 0 THEN -g ELSE g END FROM generate_series(1, 400) g;
	GRANT USAGE ON SCHEMA legacy TO alice;
	GRANT SELECT ON ALL TABLES IN SCHEMA legacy TO alice;
	CREATE TABLE public.parent (id int PRIMARY KEY, name text NOT NULL);
	CREATE TABLE public.child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES public.parent,
	                           amount numeric CONSTRAINT child_amount_check CHECK (amount >= 0));
	CREATE TABLE public.noisy (id int PRIMARY KEY, amount numeric CHECK (amount >= 0));
	ALTER TABLE public.parent OWNER TO alice;
	ALTER TABLE public.child OWNER TO alice;
	ALTER TABLE public.noisy OWNER TO alice;
});
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'migrate'"),
	'0.4', 'the extension is at 0.4');

my ($o, $e) = as('alice', q{
	SELECT migrate_plan('dirty', source_schema => 'legacy');
	SELECT migrate_table('dirty', 'legacy.parent', 'parent');
	SELECT migrate_table('dirty', 'legacy.child', 'child');
	SELECT migrate_rule('dirty', 'child', 'not_huge', 'amount < 1e8', on_fail => 'abort');
	SELECT migrate_plan('noisy', source_schema => 'legacy');
	SELECT migrate_table('noisy', 'legacy.noisy', 'noisy');
});
is($e, '', '0.4: alice defines her plans');
($o, $e) = as('alice', "SET migrate.batch_size = 500; SELECT migrate_run('dirty')");
like($e, qr/not_huge/, '0.4: the run of "dirty" fails on its abort rule');
my $run = $node->safe_psql('postgres', "SELECT max(run_id) FROM migrate.run WHERE plan = 'dirty'");
is($node->safe_psql('postgres', "SELECT state || ' ' || owner FROM migrate.run WHERE run_id = $run"),
	'failed alice', "0.4: run $run failed, as alice");
is($node->safe_psql('postgres', 'SELECT count(*) FROM public.child'), '2375',
	'0.4: 2500 child rows read, 2375 loaded (every 20th refused by the CHECK)');
is($node->safe_psql('postgres', "SELECT count(*) || ' ' || min(reason) || ' ' || max(reason) FROM migrate.reject WHERE run_id = $run"),
	'125 23514 23514', '0.4: 125 rows quarantined with 23514');

# ---- the package upgrade, then ALTER EXTENSION UPDATE ----------------------
install_current($lib, $ext);
$node->restart;
$node->safe_psql('postgres', 'SET client_min_messages = warning; ALTER EXTENSION migrate UPDATE');
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'migrate'"),
	$current, "updated to $current");

is($node->safe_psql('postgres', q{SELECT string_agg(plan_name || ' ' || owner, ', ' ORDER BY plan_name) FROM migrate.plan}),
	'dirty alice, noisy alice', 'the plans are still alice\'s');
is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE options <> '{}') || ' ' || count(*) FROM migrate.table_map}),
	'0 3', 'no table mapping has per-table options');
is($node->safe_psql('postgres', "SELECT sum(rows_rejected_setwise) || ' ' || sum(bisect_steps) FROM migrate.run_range WHERE run_id = $run"),
	'0 0', 'the new counters of the old run are 0');

# ---- alice goes on where 0.4 left off -------------------------------------
($o, $e) = as('alice', q{SELECT migrate_rule('dirty', 'child', 'not_huge', NULL)});
is($e, '', 'alice drops the abort rule');
($o, $e) = as('alice', "SELECT migrate_resume($run)");
unlike($e, qr/ERROR/, "alice resumes run $run") or diag($e);
like($e, qr/NOTICE:  .*child.*above its reject_warn of 1%/, 'the resume warns: the child table is above reject_warn');
is($node->safe_psql('postgres', "SELECT state FROM migrate.run WHERE run_id = $run"), 'succeeded',
	'the resumed run succeeded');
is($node->safe_psql('postgres', q{SELECT count(*) || ' ' || sum(amount) FROM public.child}),
	$node->safe_psql('postgres', q{SELECT count(*) || ' ' || sum(amount) FROM legacy.child WHERE amount >= 0}),
	'child holds every source row the CHECK accepts');
is($node->safe_psql('postgres', qq{SELECT count(*) || ' ' || count(DISTINCT source_key) || ' ' || string_agg(DISTINCT reason, ',')
	|| ' ' || bool_and(message = 'new row for relation "child" violates check constraint "child_amount_check"')
	FROM migrate.reject WHERE run_id = $run}),
	'200 200 23514 true', 'each of the 200 bad rows quarantined once, with the CHECK\'s SQLSTATE and message');
is($node->safe_psql('postgres', qq{SELECT rows_read || ' ' || rows_written || ' ' || rows_rejected || ' ' || state
	FROM migrate.run_table WHERE run_id = $run AND target = 'child'::regclass}),
	'4000 3800 200 succeeded', 'the child table\'s counters add up');
is($node->safe_psql('postgres', "SELECT count(*) FROM migrate.event WHERE run_id = $run AND event = 'reject warning'"),
	'1', 'a "reject warning" event');

# ---- what 0.4 called a success, 0.5 fails: 25 % rejected ------------------
($o, $e) = as('alice', "SELECT migrate_run('noisy')");
like($e, qr/ERROR:  22000: table (public\.)?noisy of migration plan "noisy": 25\.0% of its rows were rejected/,
	'a new run of a table above the default reject_limit fails with 22000');
is($node->safe_psql('postgres', 'SELECT count(*) FROM public.noisy'), '300', 'its good rows stay loaded');
($o, $e) = as('alice', q{UPDATE migrate.table_map SET options = '{"reject_limit": null}' WHERE plan = 'noisy';
	SELECT migrate_resume((SELECT max(run_id) FROM migrate.run WHERE plan = 'noisy'))});
unlike($e, qr/ERROR/, 'with "reject_limit": null for the table, the resume succeeds') or diag($e);
is($node->safe_psql('postgres', "SELECT state FROM migrate.run WHERE run_id = (SELECT max(run_id) FROM migrate.run WHERE plan = 'noisy')"),
	'succeeded', 'and the run is succeeded');
is($node->safe_psql('postgres', 'SELECT count(*) FROM public.noisy'), '300', 'no row loaded twice');

$node->stop;
done_testing();
