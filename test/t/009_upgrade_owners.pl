# 009_upgrade_owners.pl: plans, runs and value maps made under 0.3 by a
# non-superuser keep working after the upgrade to the version with owners
# and row-level security (0.4), and belong to the right roles.
#
# The released 0.3 (commit 17f186b, the last with EXTVERSION 0.3) is built
# from the git history and installed into a private copy of the server
# (MigrateTest::private_install).  Under 0.3, with the grants 0.3's runbook
# told DBAs to give (DML on the catalog), role alice defines and runs two
# plans over local source tables: "alice_done" succeeds, "alice_broken"
# fails part-way on an abort rule (batches of 500: 2500 rows committed); a
# superuser made the value map "grade" that alice_done's mapping uses.
# Then the package upgrade and ALTER EXTENSION migrate UPDATE:
#
#   - alice's plans and runs belong to alice (plan.owner, run.owner); the
#     value map, made before owners existed, has none;
#   - bob sees none of alice's plans, runs, rejects or events, and cannot
#     resume, cancel or change them, even with 0.3's grants still in place;
#   - alice resumes her failed run (its abort rule dropped): it loads only
#     the rows 0.3 had not loaded and verifies; a new plan of alice's still
#     reads the legacy map, which she cannot change;
#   - a superuser's run of alice's plan executes as alice.

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use Cwd qw(realpath);
use MigrateTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $released = '17f186b';	# the last commit with EXTVERSION 0.3
my $repo = realpath("$FindBin::RealBin/../..");

my $real_ext = `pg_config --sharedir`;
chomp $real_ext;
$real_ext .= '/extension';
my ($current) = slurp_file("$real_ext/migrate.control") =~ /^default_version\s*=\s*'([^']+)'/m;
ok(defined $current && $current ne '0.3', "the installed migrate is not 0.3 (" . ($current // 'none') . ")")
  or BAIL_OUT("make install the current tree first");

# ---- 0.3, built from its commit ------------------------------------------
my (undef, $inst, $lib, $ext) = released_install($repo, $released, '0.3');

my $node = start_node('old03', install_path => $inst, conf => { jit => 'off' });

sub as
{
	my ($role, $sql) = @_;
	my ($out, $err) = ('', '');
	$node->psql('postgres', "\\set VERBOSITY verbose\nSET client_min_messages = warning;\n$sql",
		stdout => \$out, stderr => \$err, on_error_stop => 1,
		extra_params => ['-U', $role]);
	return ($out, $err) if wantarray;
	die "as $role: $err" if $err =~ /ERROR/;
	return $out;
}

# ---- under 0.3 -------------------------------------------------------------
$node->safe_psql('postgres', q{
	SET client_min_messages = warning;
	CREATE EXTENSION migrate;
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
	CREATE SCHEMA legacy;
	CREATE TABLE legacy.items_a (id int PRIMARY KEY, grade text, amount numeric);
	INSERT INTO legacy.items_a SELECT g, (ARRAY['a', 'b', 'c'])[g % 3 + 1], g FROM generate_series(1, 1000) g;
	CREATE TABLE legacy.items_b (id int PRIMARY KEY, amount numeric);
	INSERT INTO legacy.items_b SELECT g, CASE WHEN g = 2600 THEN -1 ELSE g END FROM generate_series(1, 4000) g;
	GRANT USAGE ON SCHEMA legacy TO alice;
	GRANT SELECT ON ALL TABLES IN SCHEMA legacy TO alice;
	CREATE TABLE public.items_a (id int PRIMARY KEY, grade text, amount numeric);
	CREATE TABLE public.items_b (id int PRIMARY KEY, amount numeric);
	CREATE TABLE public.items_c (id int PRIMARY KEY, grade text, amount numeric);
	ALTER TABLE public.items_a OWNER TO alice;
	ALTER TABLE public.items_b OWNER TO alice;
	ALTER TABLE public.items_c OWNER TO alice;
	-- what 0.3's runbook told DBAs to grant (and more), to both roles
	GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA migrate TO alice, bob;
	GRANT USAGE ON ALL SEQUENCES IN SCHEMA migrate TO alice, bob;
	SELECT migrate_value_map('grade', 'a', 'Alpha');
	SELECT migrate_value_map('grade', 'b', 'Beta');
	SELECT migrate_value_map('grade', 'c', 'Gamma');
});
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'migrate'"),
	'0.3', 'the extension is at 0.3');

as('alice', q{
	SELECT migrate_plan('alice_done', source_schema => 'legacy');
	SELECT migrate_table('alice_done', 'legacy.items_a', 'items_a');
	SELECT migrate_column('alice_done', 'items_a', 'grade', 'migrate_lookup(''grade'', s.grade)');
	SELECT migrate_plan('alice_broken', source_schema => 'legacy');
	SELECT migrate_table('alice_broken', 'legacy.items_b', 'items_b');
	SELECT migrate_rule('alice_broken', 'items_b', 'no_negative', 'amount >= 0', on_fail => 'abort');
});
my $done = as('alice', "SET migrate.batch_size = 500; SELECT migrate_run('alice_done')");
like($done, qr/^\d+$/, "0.3: alice's run $done of alice_done");
my ($bout, $berr) = ('', '');
$node->psql('postgres', "SET client_min_messages = warning; SET migrate.batch_size = 500; SELECT migrate_run('alice_broken')",
	stdout => \$bout, stderr => \$berr, extra_params => ['-U', 'alice']);
like($berr, qr/no_negative/, '0.3: the run of alice_broken fails on its abort rule');
my $broken = $node->safe_psql('postgres', "SELECT max(run_id) FROM migrate.run WHERE plan = 'alice_broken'");
is($node->safe_psql('postgres', "SELECT state || ' ' || run_by FROM migrate.run WHERE run_id = $broken"),
	'failed alice', "0.3: run $broken failed, made by alice");
is($node->safe_psql('postgres', 'SELECT count(*) FROM items_b'), '2500', '0.3: 2500 rows of items_b committed');
my $grades_before = $node->safe_psql('postgres', 'SELECT string_agg(DISTINCT grade, \',\' ORDER BY grade) FROM items_a');
is($grades_before, 'Alpha,Beta,Gamma', '0.3: the value map was applied');

# ---- the package upgrade, then ALTER EXTENSION UPDATE ----------------------
install_current($lib, $ext);
$node->restart;
$node->safe_psql('postgres', 'SET client_min_messages = warning; ALTER EXTENSION migrate UPDATE');
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'migrate'"),
	$current, "updated to $current");

# ---- owners ----------------------------------------------------------------
is($node->safe_psql('postgres', "SELECT string_agg(plan_name || ' ' || owner, ', ' ORDER BY plan_name) FROM migrate.plan"),
	'alice_broken alice, alice_done alice', "alice's plans belong to alice");
is($node->safe_psql('postgres', "SELECT string_agg(DISTINCT owner::text, ',') FROM migrate.run"),
	'alice', 'her runs too');
is($node->safe_psql('postgres', "SELECT coalesce(owner::text, 'none') FROM migrate.lookup_map WHERE map_name = 'grade'"),
	'none', 'the value map made under 0.3 has no owner');

# ---- bob, with 0.3's grants still in place, reaches nothing of alice's ------
is(as('bob', q{SELECT (SELECT count(*) FROM migrate.plan) || ' ' || (SELECT count(*) FROM migrate.run)
	|| ' ' || (SELECT count(*) FROM migrate.run_table) || ' ' || (SELECT count(*) FROM migrate.event)
	|| ' ' || (SELECT count(*) FROM migrate.column_map) || ' ' || (SELECT count(*) FROM migrate_status(}
	  . $broken . '))'),
	'0 0 0 0 0 0', 'bob sees no plan, run, table, event or mapping of alice');
my $before = $node->safe_psql('postgres', q{SELECT md5(string_agg(t::text, '|' ORDER BY t::text))
	FROM (SELECT p::text t FROM migrate.plan p UNION ALL SELECT r::text FROM migrate.run r
	      UNION ALL SELECT c::text FROM migrate.column_map c UNION ALL SELECT e::text FROM migrate.event e) x});
as('bob', q{
	UPDATE migrate.plan SET owner = 'bob';
	UPDATE migrate.column_map SET expr = 'current_user';
	DELETE FROM migrate.rule;
	UPDATE migrate.run SET state = 'succeeded';
	DELETE FROM migrate.event;
});
is($node->safe_psql('postgres', q{SELECT md5(string_agg(t::text, '|' ORDER BY t::text))
	FROM (SELECT p::text t FROM migrate.plan p UNION ALL SELECT r::text FROM migrate.run r
	      UNION ALL SELECT c::text FROM migrate.column_map c UNION ALL SELECT e::text FROM migrate.event e) x}),
	$before, "bob's UPDATEs and DELETEs changed nothing");
for my $call ("migrate_resume($broken)", "migrate_cancel($broken)", "migrate_run('alice_done', dry_run => true)")
{
	my ($o, $e) = ('', '');
	$node->psql('postgres', "\\set VERBOSITY verbose\nSET client_min_messages = warning;\nSELECT $call",
		stdout => \$o, stderr => \$e, extra_params => ['-U', 'bob']);
	like($e, qr/ERROR:  (42704|42501):/, "bob: $call is refused (does not exist / permission denied)");
}
my ($vo, $ve) = ('', '');
$node->psql('postgres', "SET client_min_messages = warning; SELECT migrate_value_map('grade', 'a', 'pwned')",
	stdout => \$vo, stderr => \$ve, extra_params => ['-U', 'bob']);
like($ve, qr/ERROR/, 'bob cannot change the legacy value map');

# ---- alice goes on where 0.3 left off -------------------------------------
is(as('alice', "SELECT string_agg(run_state || ' ' || target || ' ' || table_state, ', ') FROM migrate_status($broken)"),
	'failed items_b failed', "alice sees her failed run");
as('alice', "SELECT migrate_rule('alice_broken', 'items_b', 'no_negative', NULL)");
my ($rout, $rerr) = as('alice', "SELECT migrate_resume($broken)");
is($rerr, '', "alice resumes run $broken");
is($node->safe_psql('postgres', "SELECT state FROM migrate.run WHERE run_id = $broken"), 'succeeded',
	'the resumed run succeeded');
is($node->safe_psql('postgres', 'SELECT count(*) || \' \' || sum(amount) FROM items_b'),
	$node->safe_psql('postgres', 'SELECT count(*) || \' \' || sum(amount) FROM legacy.items_b'),
	'items_b is the source');
is($node->safe_psql('postgres', "SELECT count(*) FROM migrate.reject WHERE run_id = $broken"), '0',
	'no row loaded twice (no 23505 reject)');
is(as('alice', "SELECT bool_and(ok) FROM migrate_verify('alice_done', run => $done)"), 't',
	"alice verifies her 0.3 run");

# the legacy map: readable by alice's new plan, not changeable by her
as('alice', q{
	SELECT migrate_plan('alice_new', source_schema => 'legacy');
	SELECT migrate_table('alice_new', 'legacy.items_a', 'items_c');
	SELECT migrate_column('alice_new', 'items_c', 'grade', 'migrate_lookup(''grade'', s.grade)');
	SELECT migrate_run('alice_new');
});
is($node->safe_psql('postgres', 'SELECT count(*) FROM items_a a JOIN items_c c USING (id, grade, amount)'),
	'1000', 'a new plan of alice reads the legacy value map as 0.3 did');
my ($mo, $me) = ('', '');
$node->psql('postgres', "SET client_min_messages = warning; SELECT migrate_value_map('grade', 'a', 'Other')",
	stdout => \$mo, stderr => \$me, extra_params => ['-U', 'alice']);
like($me, qr/has no owner and only a superuser may change it/, 'alice cannot change the legacy map');

# a superuser's run of alice's plan executes as alice
$node->safe_psql('postgres', q{
	CREATE FUNCTION public.who_runs(t text) RETURNS text LANGUAGE sql AS $$ SELECT current_user::text $$;
	GRANT EXECUTE ON FUNCTION public.who_runs(text) TO alice;
	TRUNCATE items_c;
});
as('alice', "SELECT migrate_column('alice_new', 'items_c', 'grade', 'public.who_runs(s.grade)')");
my $sup = $node->safe_psql('postgres', "SET client_min_messages = warning; SELECT migrate_run('alice_new')");
is($node->safe_psql('postgres', "SELECT run_by = current_user, owner FROM migrate.run WHERE run_id = $sup"),
	't|alice', "the superuser's run $sup was made by the superuser, as alice");
is($node->safe_psql('postgres', 'SELECT string_agg(DISTINCT grade, \',\') FROM items_c'),
	'alice', "alice's expression ran as alice");

$node->stop;
done_testing();

