# 002_library.pl: the migrate library cannot be loaded by the run's worker.
#
# migrate_run() itself lives in the library, so the calling session has it
# loaded; the worker is a new process that loads it again by name.  The
# realistic way for the two to differ: the library file is removed or
# replaced while sessions that loaded it are still open (package removal or
# an upgrade in progress).  This test runs a cluster from a copy of the
# installation (install_path) whose lib/ it may change, loads the library
# in a session, moves migrate.so away, and calls migrate_run() again:
#
#   - in that session the worker fails to start; launch.c raises 55000
#     "the background worker of migration plan ... exited unexpectedly"
#     with a hint about the library and $libdir, and no run row is left;
#   - a new session fails earlier, in the caller: 58P01 could not access
#     file "$libdir/migrate";
#   - once the file is back, the plan runs.

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use File::Basename qw(dirname);
use File::Path qw(make_path);
use MigrateTest;
use PostgreSQL::Test::Utils;
use Test::More;

# A copy of the installation: bin/ copied (the server finds its share/ and
# lib/ relative to its own binary), lib/ and share/ as symbolic links, so
# that lib/migrate.so can be moved without touching the real installation.
my $bindir = `pg_config --bindir`;
my $libdir = `pg_config --pkglibdir`;
my $sharedir = `pg_config --sharedir`;
chomp($bindir, $libdir, $sharedir);
plan skip_all => "installation layout without <dir>/bin and <dir>/lib ($bindir, $libdir)"
  unless dirname($bindir) eq dirname($libdir);

my $copy = PostgreSQL::Test::Utils::tempdir();
my $inst = $copy . dirname($bindir);
make_path("$inst/lib", $copy . dirname($sharedir));
system('cp', '-a', $bindir, "$inst/bin") == 0 or die "cp $bindir: $?";
opendir(my $dh, $libdir) or die "$libdir: $!";
for my $f (grep { !/^\.\.?$/ } readdir $dh)
{
	symlink("$libdir/$f", "$inst/lib/$f") or die "symlink $f: $!";
}
closedir $dh;
symlink($sharedir, $copy . $sharedir) or die "symlink $sharedir: $!";
ok(-e "$inst/lib/migrate.so", 'the copied installation has migrate.so');

my $node = start_node('library', install_path => $inst);
create_source($node, tables => [ { name => 'a', rows => 200 } ]);
create_plan($node, 'plan_a', tables => ['a'], mode => 'upsert');

# a long-lived session that has the library loaded
my $s = $node->background_psql('postgres', on_error_stop => 0);
$s->query_safe("\\set VERBOSITY verbose\nSET client_min_messages = warning");
my $run1 = $s->query_safe("SELECT migrate_run('plan_a')");
is(run_row($node, $run1)->{state}, 'succeeded', 'a first run works');

rename("$inst/lib/migrate.so", "$inst/lib/migrate.so.moved") or die "rename: $!";
my $log_offset = -s $node->logfile;

$s->{stderr} = '';
my ($out) = $s->query("SELECT migrate_run('plan_a')");
my $err = $s->{stderr};
is($out, '', 'no run id when the worker cannot load the library');
like($err, qr/ERROR:  55000: the background worker of migration plan "plan_a" exited unexpectedly/,
	'the caller gets 55000: the worker exited unexpectedly');
like($err, qr/HINT:  .*the migrate library could not be loaded by the worker \(is it installed in \$libdir\?\)/,
	'the hint names the library and $libdir');
unlike($err, qr/DETAIL:  Run \d+/, 'no run is mentioned: the worker never made one');
ok( $node->wait_for_log(qr/could not access file "migrate": No such file or directory/,
		$log_offset),
	'the server log says why the worker could not start');
is($node->safe_psql('postgres', "SELECT count(*) FROM migrate.run WHERE state = 'running'"),
	'0', 'no run is left running');
is($node->safe_psql('postgres', "SELECT count(*) FROM migrate.run"),
	'1', 'no run row was made for the failed start');
$s->quit;

# a new session cannot even call migrate_run()
my ($run, $err2) = run_plan($node, 'plan_a');
is($run, undef, 'a new session gets no run id');
like($err2, qr/ERROR:  58P01: could not access file "\$libdir\/migrate": No such file or directory/,
	'a new session fails in the caller with 58P01');

rename("$inst/lib/migrate.so.moved", "$inst/lib/migrate.so") or die "rename: $!";
($run, $err2) = run_plan($node, 'plan_a');
ok($run, 'with the library back the plan runs') or diag $err2;
is(run_row($node, $run)->{state}, 'succeeded', 'and succeeds');

$node->stop;
done_testing();
