# 001_worker_slots.pl: migrate_run() when no background worker slot is free.
#
# The cluster has max_worker_processes = 1 and no logical replication
# launcher, so one run (held at the gate) takes the only slot.  A run of
# another plan must then fail at once with SQLSTATE 53400
# (configuration_limit_exceeded), say that no slot is free and hint at
# max_worker_processes, and leave no run row behind.  Once the first run
# ends, the slot is free again.

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use MigrateTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node(
	'slots',
	conf => {
		max_worker_processes => 1,
		max_logical_replication_workers => 0,    # no launcher in the slot
		max_parallel_workers_per_gather => 0,
	});
create_source($node,
	tables => [ { name => 'a', rows => 300 }, { name => 'b', rows => 300 } ]);
create_plan($node, 'plan_a', tables => ['a'], gated => ['a']);
create_plan($node, 'plan_b', tables => ['b']);

# plan_a's run holds the only slot, stopped at the gate
set_gate($node, a => [150]);
my $gate = gate_close($node);
my ($run_a, $err) = run_plan($node, 'plan_a', batch_size => 100, wait => 'false');
ok($run_a, "plan_a started (run $run_a) without waiting") or diag $err;
gate_wait($node);

my ($run_b, $err_b) = run_plan($node, 'plan_b', batch_size => 100);
is($run_b, undef, 'plan_b gets no run id while the slot is taken');
like($err_b, qr/ERROR:  53400: /, 'SQLSTATE 53400 (configuration_limit_exceeded)');
like($err_b,
	qr/could not start a background worker for migration plan "plan_b"/,
	'the message names the plan and says no worker could start');
like($err_b, qr/DETAIL:  All background worker slots are in use\./,
	'the detail says the slots are in use');
like($err_b, qr/HINT:  .*max_worker_processes \(now 1\)/,
	'the hint names max_worker_processes and its value');
is($node->safe_psql('postgres', "SELECT count(*) FROM migrate.run WHERE plan = 'plan_b'"),
	'0', 'no run row of plan_b was left behind');
is($node->safe_psql('postgres', 'SELECT count(*) FROM b'), '0', 'nothing loaded into b');

# the held run is unaffected and finishes once the gate opens
gate_open($gate);
is(wait_run_end($node, $run_a), 'succeeded', 'plan_a run succeeded');
check_recorded_invariants($node, $run_a, name => 'plan_a');

# its slot is free again
($run_b, $err_b) = run_plan($node, 'plan_b', batch_size => 100);
ok($run_b, 'plan_b runs once the slot is free') or diag $err_b;
is(run_row($node, $run_b)->{state}, 'succeeded', 'plan_b run succeeded');
is($node->safe_psql('postgres', "SELECT count(*) FROM migrate.run WHERE state = 'running'"),
	'0', 'no run is left running');

$node->stop;
done_testing();
