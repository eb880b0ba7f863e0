# 003_kill_worker.pl: a run whose worker is killed, or whose server
# crashes or restarts, in the middle of a multi-table run.
#
# Three tables in foreign-key order (customers 2000 rows, orders 6000 with a
# rule rejecting every 97th row, items 4000), batches of 500.  At each
# point below the worker is stopped at an exact place by the gate (see
# MigrateTest.pm), killed, and the server restarted.  Then:
#
#   - what is recorded is exactly what is in the targets: per table
#     rows_read = rows_written + rows_rejected + rows_skipped, the target
#     holds rows_written rows (the batch in flight is not there, not even in
#     part), migrate.reject holds rows_rejected rows, and the target is the
#     source up to the table's checkpoint (last_key), by checksum;
#   - the checkpoints are those of the batches committed before the kill;
#   - the run is marked interrupted, not left running, as soon as
#     migrate_status() looks at it (and by the next run of the plan);
#   - if migrate_resume() exists, resuming yields exactly the target of a
#     clean run (checksums, rejects not duplicated); otherwise skipped.
#
# More points: add rows to @points (gate table and key, how to kill, the
# rows read expected per table at the kill).

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use MigrateTest;
use PostgreSQL::Test::Utils;
use Test::More;

my @tables = qw(customers orders items);
my %rules = (orders => 'amount >= 0');
# the source rows that end in each target: items of rejected orders are
# refused by the foreign key (23503)
my %expect = (
	orders => 'amount >= 0',
	items  => 'parent_id IN (SELECT id FROM orders WHERE amount >= 0)');
my $batch = 500;

# as in production: after a crash, the postmaster resets and starts again
# (PostgreSQL::Test::Cluster turns this off by default)
my $node = start_node('kill', conf => { restart_after_crash => 'on' });
create_source(
	$node,
	tables => [
		{ name => 'customers', rows => 2000 },
		{ name => 'orders', rows => 6000, parent => 'customers', bad_every => 97 },
		{ name => 'items', rows => 4000, parent => 'orders' },
	]);
create_plan($node, 'p', tables => \@tables, rules => \%rules, gated => \@tables);
my $has_resume = $node->safe_psql('postgres',
	"SELECT count(*) FROM pg_proc WHERE proname = 'migrate_resume'") ne '0';

# the reference: a clean run
my ($clean, $err) = run_plan($node, 'p', batch_size => $batch);
ok($clean, "clean run $clean") or diag $err;
is(run_row($node, $clean)->{state}, 'succeeded', 'clean run succeeded');
check_recorded_invariants($node, $clean, expect => \%expect, name => 'clean run');
my %clean_sum = map { $_ => table_checksum($node, 'postgres', $_) } @tables;
my %clean_rejects = map {
	$_ => $node->safe_psql('postgres',
		"SELECT count(*) FROM migrate.reject WHERE run_id = $clean AND target = '$_'::regclass")
} @tables;
is($clean_rejects{orders}, int(6000 / 97), 'the clean run rejects every 97th order');
is($clean_rejects{items}, 41, 'and the items of the rejected orders');
reset_targets();

# how:  term     pg_terminate_backend() of the worker, blocked mid-batch
#       kill9    kill -9 of the worker, blocked mid-batch (crash restart)
#       commit9  kill -9 of the worker when its batch is inserted and only
#                the checkpoint UPDATE (same transaction) is left
#       restart  restart of the server (fast shutdown), worker mid-batch
# when: instead of killing at the gate, kill as soon as the table has read
#       this many rows (an instant that varies from run to run: during a
#       fetch, an insert, a commit or between batches); the table's rows are
#       slowed down (delay, seconds per row) and the gate is only a backstop
# read: rows_read expected per table after the kill (committed batches);
#       [min, max] where the instant varies
# Points at a gate: the batch holding the gate key is in flight, so the
# table has committed the batches before it; earlier tables are done, later
# ones untouched.  20 points over the three tables and the four ways to die,
# plus two at a moment chosen by progress.
my %size = (customers => 2000, orders => 6000, items => 4000);
sub gate_point
{
	my ($gtab, $gkey, $how) = @_;
	my (%read, $before);
	$before = 1;
	for my $t (@tables)
	{
		if ($t eq $gtab)
		{
			$read{$t} = int(($gkey - 1) / $batch) * $batch;
			$before = 0;
		}
		else
		{
			$read{$t} = $before ? $size{$t} : 0;
		}
	}
	return { gate => [ $gtab => $gkey ], how => $how, read => \%read };
}
my @points = (
	(map { gate_point(@$_) } (
		[ customers => 250,  'kill9' ],   [ customers => 1250, 'term' ],
		[ customers => 1750, 'commit9' ], [ customers => 1999, 'restart' ],
		[ orders => 250,  'commit9' ],    [ orders => 750,  'restart' ],
		[ orders => 2250, 'term' ],       [ orders => 2250, 'commit9' ],
		[ orders => 3750, 'kill9' ],      [ orders => 4999, 'term' ],
		[ orders => 5750, 'restart' ],    [ orders => 6000, 'kill9' ],
		[ items => 1,    'term' ],        [ items => 500,  'kill9' ],
		[ items => 1250, 'restart' ],     [ items => 2250, 'commit9' ],
		[ items => 3250, 'term' ],        [ items => 3999, 'kill9' ],
		[ customers => 1, 'commit9' ],    [ items => 4000, 'restart' ])),
	{ gate => [ orders => 5250 ], how => 'kill9', when => [ orders => 3000 ], delay => 0.001,
	  read => { customers => 2000, orders => [ 3000, 5000 ], items => 0 } },
	{ gate => [ items => 3750 ], how => 'kill9', when => [ items => 1000 ], delay => 0.001,
	  read => { customers => 2000, orders => 6000, items => [ 1000, 3500 ] } },
);

for my $pt (@points)
{
	my ($gtab, $gkey) = @{ $pt->{gate} };
	my $name = "$pt->{how} at $gtab $gkey";
	$name = "$pt->{how} after $pt->{when}[1] rows of $pt->{when}[0]" if $pt->{when};
	note "=== $name";
	set_gate($node, $gtab => [$gkey]);
	set_delay($node, $pt->{delay} ? ($gtab => $pt->{delay}) : ());
	my $gate = gate_close($node);
	my $caller = start_run($node, 'p', batch_size => $batch);
	my $pid = worker_pid($node, 'p');
	my $run = $node->safe_psql('postgres',
		"SELECT run_id FROM migrate.run WHERE plan = 'p' AND state = 'running'");
	if ($pt->{when})
	{
		my ($wtab, $wrows) = @{ $pt->{when} };
		$node->poll_query_until('postgres',
			"SELECT rows_read >= $wrows FROM migrate.run_table "
			  . "WHERE run_id = $run AND target = '$wtab'::regclass")
		  or die "$wtab did not reach $wrows rows";
	}
	else
	{
		my $waiting = gate_wait($node);
		is($waiting, $pid, "$name: the run's worker ($pid) is the one at the gate");
	}

	if ($pt->{how} eq 'term')
	{
		$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
		my (undef, $cerr) = finish_run($caller);
		like($cerr,
			qr/ERROR:  55000: the background worker of migration plan "p" exited unexpectedly/,
			"$name: the waiting caller gets 55000");
		like($cerr, qr/DETAIL:  Run $run is left running/,
			"$name: the caller is told the run is left running");
		gate_open($gate);
	}
	elsif ($pt->{how} eq 'kill9' || $pt->{how} eq 'commit9')
	{
		my $lock;
		if ($pt->{how} eq 'commit9')
		{
			# hold the table's run_table row: the checkpoint UPDATE waits
			$lock = $node->background_psql('postgres', on_error_stop => 0);
			$lock->query_safe("BEGIN; SELECT 1 FROM migrate.run_table WHERE run_id = $run "
				  . "AND target = '$gtab'::regclass FOR UPDATE");
			gate_open($gate);
			$node->poll_query_until('postgres',
				"SELECT wait_event_type = 'Lock' AND wait_event = 'transactionid' "
				  . "FROM pg_stat_activity WHERE pid = $pid")
			  or die "the worker did not reach its checkpoint";
			is($node->safe_psql('postgres', "SELECT count(*) FROM $gtab"),
				run_table_rows($node, $run)->{$gtab}{written},
				"$name: the batch in flight is not visible before the kill");
		}
		kill 'KILL', $pid or die "kill $pid: $!";
		# the postmaster resets every backend, then accepts connections again
		$node->poll_query_until('postgres', 'SELECT true')
		  or die 'the server did not come back';
		finish_run($caller);
		$lock->quit if $lock;
		gate_open($gate) if $pt->{how} eq 'kill9';
		ok($node->log_contains(
				qr/background worker "migrate worker" \(PID $pid\) was terminated by signal 9/),
			"$name: the server log shows the kill");
	}
	elsif ($pt->{how} eq 'restart')
	{
		$node->restart;
		finish_run($caller);
		gate_open($gate);
	}
	$node->restart unless $pt->{how} eq 'restart';

	# when looked at after the restart, the run is no longer "running"
	{
		is($node->safe_psql('postgres', "SELECT DISTINCT run_state FROM migrate_status($run)"),
			'interrupted', "$name: migrate_status() shows the run interrupted after the restart");
		is($node->safe_psql('postgres', "SELECT count(*) FROM migrate.progress WHERE run_id = $run"),
			'0', "$name: migrate.progress does not list the dead run");
	}

	my $rows = check_recorded_invariants($node, $run, expect => \%expect, name => $name);
	for my $t (@tables)
	{
		my $want = $pt->{read}{$t};
		if (ref $want)
		{
			ok($rows->{$t}{read} >= $want->[0] && $rows->{$t}{read} <= $want->[1],
				"$name, $t: rows_read $rows->{$t}{read} is within [$want->[0], $want->[1]]");
			note "$name: killed after $rows->{$t}{read} rows of $t";
		}
		else
		{
			is($rows->{$t}{read}, $want,
				"$name, $t: rows_read is that of the batches committed before the kill");
		}
	}

	# the next run of the plan (here a dry run of one table) marks it interrupted
	my ($dry, $derr) = run_plan($node, 'p', batch_size => $batch, dry_run => 'true',
		tables => ['customers']);
	ok($dry, "$name: a dry run of the plan can start") or diag $derr;
	my $r = run_row($node, $run);
	is($r->{state}, 'interrupted', "$name: the run is marked interrupted by the next run");
	like($r->{error}, qr/worker ended without finishing/, "$name: the run says why");
	$rows = run_table_rows($node, $run);
	for my $t (@tables)
	{
		my $want = ($t eq $gtab || !ref $pt->{read}{$t} && $pt->{read}{$t} == 0)
		  ? 'interrupted' : 'succeeded';
		is($rows->{$t}{state}, $want, "$name, $t: table state $want");
	}

	SKIP:
	{
		skip 'migrate_resume() does not exist yet (issue 3)', 3 + 2 * @tables
		  unless $has_resume;
		my $rerr = '';
		$node->psql('postgres', "SET client_min_messages = warning; SELECT migrate_resume($run)",
			stderr => \$rerr);
		is($rerr, '', "$name: migrate_resume($run) works");
		for my $t (@tables)
		{
			is(table_checksum($node, 'postgres', $t), $clean_sum{$t},
				"$name, $t: the resumed target is the clean run's target");
			is( $node->safe_psql('postgres',
					"SELECT count(*) FROM migrate.reject j JOIN migrate.run r USING (run_id) "
					  . "WHERE j.run_id >= $run AND NOT r.dry_run AND j.target = '$t'::regclass"),
				$clean_rejects{$t},
				"$name, $t: rejects are not duplicated by the resume");
		}
		# the sum of row hashes kept with the checkpoints survived the kill:
		# reread => false vouches exactly what a re-read of the source does
		my $vouched = $node->safe_psql('postgres',
			"SELECT count(*) FILTER (WHERE a.ok AND a.source_value = r.source_value AND a.details LIKE '%as run % wrote them%'), "
			  . "count(*) FILTER (WHERE rt.loaded_checksum IS NOT NULL AND rt.rows_rejected + rt.rows_skipped = 0) "
			  . "FROM migrate_verify('p', $run, reread => false) a "
			  . "JOIN migrate_verify('p', $run) r USING (target, check_name) "
			  . "JOIN migrate.run_table rt ON rt.run_id = $run AND rt.target = a.target "
			  . "WHERE a.check_name = 'checksum'");
		my ($same, $kept) = split /\|/, $vouched;
		ok($kept > 0, "$name: the resumed run kept a checksum of $kept table(s) without rejects");
		is($same, $kept, "$name: each equals the checksum of the source read again");
	}
	reset_targets();
}

is($node->safe_psql('postgres', "SELECT count(*) FROM migrate.run WHERE state = 'running'"),
	'0', 'no run is left running');
$node->stop;
done_testing();

sub reset_targets
{
	$node->safe_psql('postgres', 'TRUNCATE ' . join(', ', reverse @tables));
	return;
}
