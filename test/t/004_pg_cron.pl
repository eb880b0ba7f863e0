# 004_pg_cron.pl: runs scheduled with pg_cron.
#
# pg_cron (Debian package postgresql-15-cron, 1.4: schedules have a
# one-minute resolution) is in shared_preload_libraries and runs its jobs
# in the target database through libpq.  Two jobs schedule the same plan
# every minute, so they fire together.  The first run to start is held at
# the gate; the other must be refused with "already running" (SQLSTATE
# 55006), which pg_cron records in cron.job_run_details, and no two runs of
# the plan ever overlap.  Once the gate opens, the held run succeeds and
# cron.job_run_details says so.
#
# This test waits for a minute boundary: it takes up to about 70 seconds.

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use MigrateTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $pkglibdir = `pg_config --pkglibdir`;
chomp $pkglibdir;
plan skip_all => "pg_cron is not installed (apt-get install postgresql-15-cron)"
  unless -e "$pkglibdir/pg_cron.so";

my $node = start_node(
	'cron',
	conf => {
		shared_preload_libraries => 'pg_cron',
		'cron.database_name' => 'postgres',
		'cron.host' => '@HOST@',    # the cluster listens on its socket only
	});
create_source(
	$node,
	tables => [
		{ name => 'customers', rows => 500 },
		{ name => 'orders', rows => 1500, parent => 'customers' },
	]);
# upsert: a scheduled plan must be repeatable
create_plan($node, 'cronplan', tables => [qw(customers orders)], mode => 'upsert',
	gated => ['orders']);
$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron');

# hold the first run in its second batch of orders
set_gate($node, orders => [750]);
my $gate = gate_close($node);
# one statement per job: with "SET ...; SELECT migrate_run(...)" pg_cron 1.4
# sometimes never collects the second result of a job when two jobs run at
# once (the job stays "running"); settings go to the role or the database
$node->safe_psql('postgres', 'ALTER DATABASE postgres SET migrate.batch_size = 500');
my $cmd = q{$$SELECT migrate_run('cronplan')$$};
# both jobs in one transaction, not in the last seconds of a minute, so
# that the scheduler loads them together before they are due
sleep(1) while (localtime)[0] >= 55;
$node->safe_psql('postgres',
	"SELECT cron.schedule('cron_a', '* * * * *', $cmd), cron.schedule('cron_b', '* * * * *', $cmd)");

# both fire at the next minute: one run is held at the gate, the other job fails
gate_wait($node);
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM cron.job_run_details WHERE status = 'failed'")
  or die 'the second job did not fail';
is($node->safe_psql('postgres', "SELECT count(*) FROM migrate.run WHERE plan = 'cronplan'"),
	'1', 'only one run of the plan was started');
my $run = $node->safe_psql('postgres', "SELECT run_id FROM migrate.run WHERE plan = 'cronplan'");
is(run_row($node, $run)->{state}, 'running', 'the run of the first job is going');

like($node->safe_psql('postgres',
		"SELECT return_message FROM cron.job_run_details WHERE status = 'failed' "
		  . "ORDER BY start_time LIMIT 1"),
	qr/migration plan "cronplan" is already running/,
	'cron.job_run_details records the "already running" error of the other job');
ok($node->log_contains(
		qr/client backend 55006 ERROR:  migration plan "cronplan" is already running/),
	'the refused call failed with SQLSTATE 55006 (server log)');
# at the same instant the refused call may come before the run row commits:
# it then says the run is starting
like($node->safe_psql('postgres',
		"SELECT return_message FROM cron.job_run_details WHERE status = 'failed' "
	  . "ORDER BY start_time LIMIT 1"),
	qr/already running \((run $run|its run is starting)\)/, 'the refusal names the running run');

# unschedule only now: pg_cron 1.4 drops the connection of a running job
# that is unscheduled (the run itself goes on in its worker)
gate_open($gate);
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM cron.job_run_details WHERE status = 'succeeded'")
  or die 'the first job did not succeed';
$node->safe_psql('postgres',
	"SELECT cron.unschedule('cron_a'); SELECT cron.unschedule('cron_b')");
is(wait_run_end($node, $run), 'succeeded', 'the scheduled run succeeded');
is($node->safe_psql('postgres', "SELECT run_by, batch_size FROM migrate.run WHERE run_id = $run"),
	'postgres|500', 'it ran as the role of the cron job, with the database\'s batch size');
check_recorded_invariants($node, $run, name => 'scheduled run');
is($node->safe_psql('postgres', 'SELECT count(*) FROM orders'), '1500', 'every order is loaded');

# the refusal happened while the run was going, and the run lies within its
# job's run
is( $node->safe_psql(
		'postgres', qq{
	SELECT f.end_time BETWEEN r.started_at AND r.finished_at,
	       r.started_at >= s.start_time AND r.finished_at <= s.end_time
	  FROM (SELECT * FROM cron.job_run_details WHERE status = 'failed'
	         ORDER BY start_time LIMIT 1) f,
	       (SELECT * FROM cron.job_run_details WHERE status = 'succeeded'
	         ORDER BY start_time LIMIT 1) s,
	       migrate.run r
	 WHERE r.run_id = $run}),
	't|t', 'the refusal came while the run was going; the run lies within its job');
is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) FROM migrate.run a JOIN migrate.run b
	    ON a.plan = b.plan AND a.run_id < b.run_id
	   AND tstzrange(a.started_at, a.finished_at) && tstzrange(b.started_at, b.finished_at)
	 WHERE a.plan = 'cronplan'}),
	'0', 'no two runs of the plan overlap');
is($node->safe_psql('postgres', 'SELECT count(*) FROM cron.job'), '0', 'the jobs are gone');

$node->stop;
done_testing();
