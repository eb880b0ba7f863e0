# 005_upgrade.pl: runs made under the released 0.1 survive the package
# upgrade and ALTER EXTENSION migrate UPDATE.
#
# The released 0.1 (commit a5f43ad: its library and its SQL) is built from
# the git history of this tree and installed into a private copy of the
# server's installation (MigrateTest::private_install).  Under 0.1: a plan
# "done" whose run succeeds (tables a, b), and a plan "broken" whose run
# fails part-way (tables c, d; d has an abort rule that source row 2600
# breaks, batches of 500, insert mode), so that d has committed the batches
# up to key 2500.  Then the package upgrade: the current library, control
# file and scripts (those installed by make install) replace 0.1's in the
# private installation.
#
#   - a session that still has 0.1's library loaded starts a run: the
#     worker, a new process, loads the new library, which refuses to work
#     for an extension at 0.1 (server log); nothing is written;
#   - after the restart, migrate_run() raises 55000 "extension "migrate" is
#     at version 0.1 but its library is version X" with the hint "Run ALTER
#     EXTENSION migrate UPDATE.", and nothing is written;
#   - ALTER EXTENSION migrate UPDATE replays every C function of the old
#     scripts against the new library, and records 0.1's checkpoints as
#     units (the data fix-up of sql/updates);
#   - migrate_status() shows both runs; migrate_verify() passes for the
#     finished run; migrate_resume() of the failed run (its abort rule
#     dropped) loads only the rows 0.1 had not loaded: no 23505 reject, the
#     targets equal the sources by checksum, the counters add up.
#
# The current version is the installed control file's default_version (not
# hard-coded).

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use Cwd qw(realpath);
use File::Copy qw(copy);
use MigrateTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $released = 'a5f43ad';	# the last commit with EXTVERSION 0.1
my $repo = realpath("$FindBin::RealBin/../..");
my $batch = 500;

# the current version: what make install put beside the server
my $real_ext = `pg_config --sharedir`;
chomp $real_ext;
$real_ext .= '/extension';
my $real_lib = `pg_config --pkglibdir`;
chomp $real_lib;
my ($current) = slurp_file("$real_ext/migrate.control") =~ /^default_version\s*=\s*'([^']+)'/m;
ok(defined $current && $current ne '0.1',
	"the installed migrate is a version after 0.1 (" . ($current // 'none') . ")")
  or BAIL_OUT("no migrate.control with a default_version after 0.1 in $real_ext: make install first");

# ---- the released 0.1, built from its commit ----------------------------
# the tree is owned by another user when run as postgres on a copy
my @git = ('git', '-c', 'safe.directory=*', '-C', $repo);
my $have = system(@git, 'cat-file', '-e', "$released^{commit}") == 0;
ok($have, "the released 0.1 (commit $released) is in the git history of $repo")
  or BAIL_OUT("commit $released (the released 0.1) is missing from $repo: this test builds 0.1 "
	  . "from it; use a clone with its history (not shallow, or git fetch --unshallow)");
my $src01 = PostgreSQL::Test::Utils::tempdir();
my $build_log = "$src01.build.log";
{
	# a make of its own: not the variables of the make that runs the tests
	local $ENV{MAKEFLAGS};
	local $ENV{MAKELEVEL};
	local $ENV{MFLAGS};
	delete @ENV{qw(MAKEFLAGS MAKELEVEL MFLAGS)};
	my $pg_config = $ENV{PG_CONFIG} || 'pg_config';
	system("git -c safe.directory='*' -C '$repo' archive $released | tar -x -C '$src01'") == 0
	  or BAIL_OUT("git archive $released failed");
	system("make -C '$src01' PG_CONFIG='$pg_config' >'$build_log' 2>&1") == 0
	  or BAIL_OUT("building 0.1 failed, see $build_log:\n" . slurp_file($build_log));
}
like(slurp_file("$src01/migrate.control"), qr/^default_version = '0\.1'$/m,
	"commit $released is version 0.1");
is(system('cmp', '-s', "$src01/sql/migrate--0.1.sql", "$real_ext/migrate--0.1.sql"), 0,
	"0.1's install script is the one the current package ships (frozen)");

# ---- a private installation with 0.1 in it ------------------------------
my ($inst, $lib, $ext) = private_install(PostgreSQL::Test::Utils::tempdir());
install_file("$src01/migrate.so", "$lib/migrate.so");
install_file("$src01/migrate.control", "$ext/migrate.control");
install_file("$src01/sql/migrate--0.1.sql", "$ext/migrate--0.1.sql");
is(`'$inst/bin/pg_config' --pkglibdir`, "$lib\n",
	"the private installation's pg_config names its own lib directory");

my $node = start_node('old', install_path => $inst, conf => { jit => 'off' });
is($node->safe_psql('postgres',
		"SELECT string_agg(version, ',') FROM pg_available_extension_versions WHERE name = 'migrate'"),
	'0.1', 'the private server sees only migrate 0.1');

create_source(
	$node,
	tables => [
		{ name => 'a', rows => 1000 },
		{ name => 'b', rows => 1500, parent => 'a' },
		{ name => 'c', rows => 1000 },
		# amount is -1 at d.id = 2600 only
		{ name => 'd', rows => 4000, parent => 'c', bad_every => 2600 },
	]);
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'migrate'"),
	'0.1', 'CREATE EXTENSION migrate made version 0.1');
is($node->safe_psql('migrate_src', 'SELECT id FROM d WHERE amount < 0'), '2600',
	'one source row of d breaks the rule');

create_plan($node, 'done', tables => [qw(a b)]);
create_plan($node, 'broken', tables => [qw(c d)]);
$node->safe_psql('postgres',
	"SELECT migrate_rule('broken', 'd', 'no_negative', 'amount >= 0', on_fail => 'abort')");

my ($done, $err) = run_plan($node, 'done', batch_size => $batch);
ok($done, "0.1: run $done of plan done") or diag $err;
is(run_row($node, $done)->{state}, 'succeeded', '0.1: the run of plan done succeeded');
check_recorded_invariants($node, $done, name => '0.1 run of done');

my ($broken, $berr) = run_plan($node, 'broken', batch_size => $batch);
is($broken, undef, '0.1: the run of plan broken raises');
like($berr, qr/no_negative/, "0.1: the error names the abort rule") or diag $berr;
$broken = $node->safe_psql('postgres', "SELECT max(run_id) FROM migrate.run WHERE plan = 'broken'");
is(run_row($node, $broken)->{state}, 'failed', "0.1: run $broken of plan broken failed");
my $rows = check_recorded_invariants($node, $broken, name => '0.1 run of broken');
is($rows->{c}{state}, 'succeeded', '0.1: table c was loaded');
is($rows->{d}{state}, 'failed', '0.1: table d failed');
is($rows->{d}{last_key}, '2500', "0.1: d's checkpoint is the last batch before row 2600");
is($rows->{d}{written}, '2500', '0.1: d has 2500 rows');

my %sum_before = map { $_ => table_checksum($node, 'postgres', $_) } qw(a b c d);
my $catalog_before = catalog_counts();

# a session with 0.1's library loaded, for after the files are replaced
my $old_session = $node->background_psql('postgres', on_error_stop => 0);
$old_session->query_safe("\\set VERBOSITY verbose\nSET client_min_messages = warning");
like($old_session->query_safe("SELECT migrate_batch_statement('done', 'a')"), qr/INSERT INTO/,
	'a session has loaded the 0.1 library');

# ---- the package upgrade: the current files replace 0.1's ----------------
unlink glob("$ext/migrate.control $ext/migrate--*.sql");
install_file("$real_lib/migrate.so", "$lib/migrate.so");
for my $f (glob("$real_ext/migrate.control $real_ext/migrate--*.sql"))
{
	(my $name = $f) =~ s{.*/}{};
	install_file($f, "$ext/$name");
}
require_fixup();

# every C function of the installed scripts (the released ones, which the
# update replays, among them) must be in the library
SKIP:
{
	my $nm = `nm -D --defined-only '$lib/migrate.so' 2>/dev/null`;
	skip 'nm is not available', 1 if $? != 0;
	my %exported = map { (split ' ')[-1] => 1 } split /\n/, $nm;
	my %wanted;
	for my $script (glob("$ext/migrate--*.sql"))
	{
		$wanted{$_} = 1 for slurp_file($script) =~ /'MODULE_PATHNAME',\s*'(\w+)'/g;
	}
	my @missing = grep { !$exported{$_} } sort keys %wanted;
	is("@missing", '', 'the library exports every C symbol of the installed scripts ('
		  . scalar(keys %wanted) . ')');
}

# the old session's worker is a new process: it loads the new library
my $log_offset = -s $node->logfile;
$old_session->{stderr} = '';
my ($out) = $old_session->query("SELECT migrate_run('done')");
is($out, '', 'a session with the old library loaded gets no run');
like($old_session->{stderr}, qr/ERROR:  55000: the background worker of migration plan "done" exited unexpectedly/,
	"its worker, with the new library, stopped") or diag $old_session->{stderr};
ok( $node->wait_for_log(
		qr/extension "migrate" is at version 0\.1 but its library is version \Q$current\E/,
		$log_offset),
	'the worker refused: the server log says the extension is at 0.1 and the library is not');
$old_session->quit;
is(catalog_counts(), $catalog_before, 'nothing was written by the refused worker');

$node->restart;

# ---- before ALTER EXTENSION UPDATE: a clear error -------------------------
for my $call ("migrate_run('done')", "migrate_run('broken', dry_run => true)")
{
	my ($stdout, $stderr) = ('', '');
	$node->psql('postgres', "\\set VERBOSITY verbose\nSET client_min_messages = warning;\nSELECT $call",
		stdout => \$stdout, stderr => \$stderr);
	is($stdout, '', "before the update, $call returns no run");
	like($stderr,
		qr/ERROR:  55000: extension "migrate" is at version 0\.1 but its library is version \Q$current\E\n/,
		"before the update, $call raises 55000 naming both versions");
	like($stderr, qr/\nHINT:  Run ALTER EXTENSION migrate UPDATE\.\n/, '... with the hint to update');
	unlike($stderr, qr/run_range|does not exist/, '... and not an error about the catalog');
}
is(catalog_counts(), $catalog_before, 'nothing was written before the update');
is(join(' ', map { table_checksum($node, 'postgres', $_) } qw(a b c d)),
	join(' ', map { $sum_before{$_} } qw(a b c d)), 'the targets are untouched');

# ---- ALTER EXTENSION migrate UPDATE -------------------------------------
$node->safe_psql('postgres', 'SET client_min_messages = warning; ALTER EXTENSION migrate UPDATE');
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'migrate'"),
	$current, "the extension is at $current");
is($node->safe_psql('postgres',
		"SELECT default_version FROM pg_available_extensions WHERE name = 'migrate'"),
	$current, 'which is the default version of the installed control file');

# the fix-up: 0.1's checkpoints are units now
is($node->safe_psql('postgres', "SELECT bool_and(planned) FROM migrate.run"),
	't', 'every 0.1 run is marked planned');
is( $node->safe_psql('postgres',
		"SELECT string_agg(format('%s %s %s %s %s %s', u.target, u.range_no, u.state, "
		  . "coalesce(u.last_key, '-'), u.rows_read, u.rows_written), ', ' ORDER BY u.target::text) "
		  . "FROM migrate.run_range u WHERE u.run_id = $broken"),
	'c 1 succeeded 1000 1000 1000, d 1 failed 2500 2500 2500',
	"the failed run's units carry 0.1's states and checkpoints");
is( $node->safe_psql('postgres',
		"SELECT string_agg(target::text || ' ' || depth, ', ' ORDER BY load_order) "
		  . "FROM migrate.run_table WHERE run_id = $broken"),
	'c 0, d 1', "the failed run's tables keep 0.1's order");

# ---- after the update ---------------------------------------------------
is( $node->safe_psql('postgres',
		"SELECT string_agg(format('%s %s %s %s', run_id, run_state, target, table_state), ', ' "
		  . "ORDER BY run_id, target::text) FROM (SELECT * FROM migrate_status($done) "
		  . "UNION ALL SELECT * FROM migrate_status($broken)) s"),
	"$done succeeded a succeeded, $done succeeded b succeeded, "
	  . "$broken failed c succeeded, $broken failed d failed",
	'migrate_status() shows both runs');
is($node->safe_psql('postgres', 'SELECT DISTINCT run_id FROM migrate_status()'),
	$broken, 'migrate_status() without a run shows the latest');

is( $node->safe_psql('postgres',
		"SELECT count(*) > 0 AND bool_and(ok) FROM migrate_verify('done', run => $done)"),
	't', "migrate_verify() of the finished 0.1 run passes")
  or diag $node->safe_psql('postgres',
	"SELECT check_name, ok, details FROM migrate_verify('done', run => $done) WHERE NOT ok");

# remove the cause of the failure, and continue the run
$node->safe_psql('postgres', "SELECT migrate_rule('broken', 'd', 'no_negative', NULL)");
my ($rout, $rerr) = ('', '');
$node->psql('postgres', "SET client_min_messages = warning; SELECT migrate_resume($broken)",
	stdout => \$rout, stderr => \$rerr);
is($rerr, '', "migrate_resume($broken) of the failed 0.1 run works");
is(run_row($node, $broken)->{state}, 'succeeded', 'the resumed run succeeded');
$rows = run_table_rows($node, $broken);
for my $t (qw(c d))
{
	is($node->safe_psql('postgres', "SELECT count(*) FROM $t"),
		$node->safe_psql('migrate_src', "SELECT count(*) FROM $t"),
		"$t: the target has as many rows as the source");
	is(table_checksum($node, 'postgres', $t), source_checksum($node, $t),
		"$t: the target is the source, by checksum");
	is($node->safe_psql('postgres',
			"SELECT count(*) FROM migrate.reject WHERE run_id = $broken AND target = '$t'::regclass"),
		'0', "$t: no reject (no row loaded twice: no 23505)");
	is("$rows->{$t}{read} $rows->{$t}{written} $rows->{$t}{rejected}",
		$t eq 'c' ? '1000 1000 0' : '4000 4000 0',
		"$t: read and written count every row once");
}
is(table_checksum($node, 'postgres', 'c'), $sum_before{c}, 'c, finished under 0.1, was not touched');
is( $node->safe_psql('postgres',
		"SELECT rows_read || ' ' || last_key || ' ' || state FROM migrate.run_range "
		  . "WHERE run_id = $broken AND target = 'd'::regclass"),
	'4000 4000 succeeded', "d's unit went on from 0.1's checkpoint to the end");
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM migrate.event WHERE run_id = $broken AND event = 'run resumed'"),
	'1', 'the resume is in the event log');
is( $node->safe_psql('postgres',
		"SELECT count(*) > 0 AND bool_and(ok) FROM migrate_verify('broken', run => $broken)"),
	't', 'migrate_verify() of the resumed run passes')
  or diag $node->safe_psql('postgres',
	"SELECT check_name, ok, details FROM migrate_verify('broken', run => $broken) WHERE NOT ok");
is(table_checksum($node, 'postgres', 'a') . ' ' . table_checksum($node, 'postgres', 'b'),
	"$sum_before{a} $sum_before{b}", "the finished run's targets are unchanged");

# and new runs work on the upgraded database (a dry run: the targets are full)
my ($dry, $derr) = run_plan($node, 'done', batch_size => $batch, dry_run => 'true');
ok($dry, "a new (dry) run $dry of plan done starts after the update") or diag $derr;
is(run_row($node, $dry)->{state}, 'succeeded', 'and succeeds');

$node->stop;
done_testing();

# Copy a file into the private installation under a temporary name, then
# rename it into place: a process that has the old file mapped keeps it.
sub install_file
{
	my ($from, $to) = @_;
	copy($from, "$to.tmp") or die "copy $from: $!";
	rename("$to.tmp", $to) or die "rename $to: $!";
	return;
}

# Counts of what a run writes, to show that nothing was.
sub catalog_counts
{
	return $node->safe_psql('postgres',
		"SELECT (SELECT count(*) FROM migrate.run) || ' ' || (SELECT count(*) FROM migrate.run_table)"
		  . " || ' ' || (SELECT count(*) FROM migrate.reject) || ' ' || (SELECT count(*) FROM migrate.event)"
		  . " || ' ' || (SELECT sum(rows_read) FROM migrate.run_table)");
}

# The data fix-up for runs made under 0.1 (its event is 'run upgraded', in
# sql/updates/0.2--0.3.sql) must be part of the upgrade from 0.1 to the
# current version, whatever path ALTER EXTENSION takes.
sub require_fixup
{
	# the scripts ALTER EXTENSION will run: the shortest path from 0.1
	my $path = $node->safe_psql('postgres',
		"SELECT path FROM pg_extension_update_paths('migrate') "
		  . "WHERE source = '0.1' AND target = '$current'");
	die "no update path from 0.1 to $current in $ext" if $path eq '';
	my @v = split /--/, $path;
	my @steps = map { "$ext/migrate--$v[$_ - 1]--$v[$_].sql" } 1 .. $#v;
	die "the update path $path has no data fix-up for runs made under 0.1"
	  unless grep { slurp_file($_) =~ /'run upgraded'/ } @steps;
	return;
}
