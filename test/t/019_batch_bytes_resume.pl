# 019_batch_bytes_resume.pl: a run whose batches change size (a byte
# budget, rows of very different widths) killed mid-run and resumed.
#
# One table of 3000 rows through postgres_fdw, batch_size 500, plan option
# batch_bytes 128 kB; rows 1001..1600 and 2401..2600 carry notes of about
# 200 kB, so batches shrink there (down to one row) and grow again after.
# The worker is stopped by the gate (MigrateTest.pm) inside the wide
# stretches and after them, killed (kill -9, pg_terminate_backend) or the
# server restarted.  Then, as in 003_kill_worker.pl: what is recorded is
# exactly what is in the target (no half batch, the target is the source
# up to the checkpoint), and migrate_resume() yields exactly the target of
# a clean run (no lost or doubled rows).

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use MigrateTest;
use PostgreSQL::Test::Utils;
use Test::More;

my @tables = qw(docs);
my $batch = 500;

my $node = start_node('bytes', conf => { restart_after_crash => 'on' });
create_source($node, tables => [ { name => 'docs', rows => 3000 } ]);
# the wide rows: about 200 kB of md5 hex each
$node->safe_psql('migrate_src',
	"UPDATE docs SET note = (SELECT string_agg(md5(docs.id || '.' || i), '') FROM generate_series(1, 6400) i)"
	  . " WHERE id BETWEEN 1001 AND 1600 OR id BETWEEN 2401 AND 2600; ANALYZE docs");
create_plan($node, 'p', tables => \@tables, gated => \@tables);
$node->safe_psql('postgres',
	"UPDATE migrate.plan SET options = options || '{\"batch_bytes\": \"128kB\"}' WHERE plan_name = 'p'");

# the reference: a clean run, its batches not all of batch_size
my ($clean, $err) = run_plan($node, 'p', batch_size => $batch);
ok($clean, "clean run $clean") or diag $err;
my $r = run_row($node, $clean);
is($r->{state}, 'succeeded', 'clean run succeeded');
is($node->safe_psql('postgres', "SELECT batch_bytes FROM migrate.run WHERE run_id = $clean"),
	'131072', 'the run keeps the plan\'s batch_bytes');
check_recorded_invariants($node, $clean, name => 'clean run');
my $batches = $node->safe_psql('postgres', "SELECT batches FROM migrate.run_table WHERE run_id = $clean");
cmp_ok($batches, '>', 3 * 3000 / $batch, "batches change size: $batches batches for 3000 rows of batch_size $batch");
ok($node->safe_psql('postgres',
		"SELECT count(*) FROM migrate.event WHERE run_id = $clean AND event = 'rows over batch_bytes'") >= 1,
	'rows over the budget are said to load one per batch');
my $clean_sum = table_checksum($node, 'postgres', 'docs');
is($clean_sum, source_checksum($node, 'docs'), 'the clean run\'s target is the source');
$node->safe_psql('postgres', 'TRUNCATE docs');

# gate key, how to die
my @points = (
	[ 1050, 'kill9' ],   [ 1150, 'term' ],  [ 1500, 'kill9' ],
	[ 2550, 'restart' ], [ 2590, 'kill9' ], [ 2900, 'term' ]);
for my $pt (@points)
{
	my ($gkey, $how) = @$pt;
	my $name = "$how at docs $gkey";
	note "=== $name";
	set_gate($node, docs => [$gkey]);
	my $gate = gate_close($node);
	my $caller = start_run($node, 'p', batch_size => $batch);
	my $pid = worker_pid($node, 'p');
	my $run = $node->safe_psql('postgres',
		"SELECT run_id FROM migrate.run WHERE plan = 'p' AND state = 'running'");
	is(gate_wait($node), $pid, "$name: the run's worker is at the gate");

	if ($how eq 'term')
	{
		$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
		finish_run($caller);
		gate_open($gate);
	}
	elsif ($how eq 'kill9')
	{
		kill 'KILL', $pid or die "kill $pid: $!";
		$node->poll_query_until('postgres', 'SELECT true')
		  or die 'the server did not come back';
		finish_run($caller);
		gate_open($gate);
	}
	else
	{
		$node->restart;
		finish_run($caller);
		gate_open($gate);
	}
	$node->restart unless $how eq 'restart';

	# looked at after the restart, the run is interrupted (then resumable)
	is($node->safe_psql('postgres', "SELECT DISTINCT run_state FROM migrate_status($run)"),
		'interrupted', "$name: the run is interrupted");
	my $rows = check_recorded_invariants($node, $run, name => $name);
	cmp_ok($rows->{docs}{read}, '<', $gkey, "$name: the batch holding the gate key is not recorded");
	my $rerr = '';
	$node->psql('postgres', "SET client_min_messages = warning; SELECT migrate_resume($run)",
		stderr => \$rerr);
	is($rerr, '', "$name: migrate_resume($run) works");
	is(run_row($node, $run)->{state}, 'succeeded', "$name: the resumed run succeeded");
	is(table_checksum($node, 'postgres', 'docs'), $clean_sum,
		"$name: the resumed target is the clean run's target (nothing lost, nothing doubled)");
	is($node->safe_psql('postgres', 'SELECT count(*) - count(DISTINCT id) FROM docs'), '0',
		"$name: no key twice");
	$node->safe_psql('postgres', 'TRUNCATE docs');
}

is($node->safe_psql('postgres', "SELECT count(*) FROM migrate.run WHERE state = 'running'"),
	'0', 'no run is left running');
$node->stop;
done_testing();
