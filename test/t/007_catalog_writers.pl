# 007_catalog_writers.pl: the writes of run state made by the SQL functions
# go through src/catalog.c (migrate._catalog_*), and the two ways a run
# becomes "interrupted" (migrate._reap from SQL, a coordinator taking the
# plan's lock) are one transition.
#
# The SQL functions (migrate_plan, migrate_cancel, migrate_verify,
# migrate_diff, migrate_report, migrate._reap) call these instead of writing
# the tables themselves; test/structure.sh checks that none writes them.

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use MigrateTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('catalog');
create_source($node, tables => [ { name => 'customers', rows => 300 } ]);
create_plan($node, 'p', tables => ['customers']);


my ($run, $err) = run_plan($node, 'p', batch_size => 100);
ok($run, "a run of the plan ($run)") or diag $err;
is(run_row($node, $run)->{state}, 'succeeded', 'it succeeded');

sub q1 { return $node->safe_psql('postgres', $_[0]); }
sub events
{
	my ($run) = @_;
	return q1("SELECT string_agg(event || ':' || coalesce(details, '') || ':'"
		  . " || CASE WHEN actor = current_user THEN 't' ELSE 'f' END,"
		  . " '|' ORDER BY event_id) FROM migrate.event WHERE run_id = $run");
}

# event
q1("SELECT migrate._catalog_event(NULL, 'p', 'plan defined', '{\"from\": \"005\"}')");
is(q1("SELECT count(*) FROM migrate.event WHERE run_id IS NULL AND plan = 'p'"
		  . " AND event = 'plan defined' AND details = '{\"from\": \"005\"}' AND actor = current_user"),
	'1', '_catalog_event: a plan event, in the name of the current user');
my ($ret, $out, $stderr) = $node->psql('postgres', "SELECT migrate._catalog_event($run, 'p', NULL, 'x')");
like($stderr, qr/event of migrate._catalog_event\(\) must not be null/, '_catalog_event: an event is required');

# verified
q1("SELECT migrate._catalog_verified($run, false, '3 checks, 1 failed')");
is(q1("SELECT verified, verified_at IS NOT NULL FROM migrate.run WHERE run_id = $run"), 'f|t',
	'_catalog_verified: run.verified and verified_at');
q1("SELECT migrate._catalog_verified($run, true, '3 checks, 0 failed')");
is(q1("SELECT verified FROM migrate.run WHERE run_id = $run"), 't', '_catalog_verified: passed');
like(events($run), qr/\|verification failed:3 checks, 1 failed:t\|run verified:3 checks, 0 failed:t$/,
	'_catalog_verified: one event per verification');
($ret, $out, $stderr) = $node->psql('postgres', "SELECT migrate._catalog_verified(999999, true, NULL)");
like($stderr, qr/migration run 999999 does not exist/, '_catalog_verified: an unknown run is an error');

# report
q1("SELECT migrate._catalog_report($run, '# report')");
is(q1("SELECT report FROM migrate.run WHERE run_id = $run"), '# report', '_catalog_report: run.report');

# cancel: a finished run is not running
is(q1("SELECT migrate._catalog_cancel($run)"), 'f', '_catalog_cancel: false for a finished run');
unlike(events($run), qr/cancel requested/, '_catalog_cancel: no event when nothing was asked');

# a run left "running" by a worker that is gone, with and without an error
q1("INSERT INTO migrate.run (plan, batch_size, worker_pid) VALUES ('p', 100, 0), ('p', 100, 0)");
my ($dead1, $dead2) = split /\n/,
  q1("SELECT run_id FROM migrate.run WHERE state = 'running' ORDER BY run_id");
q1("UPDATE migrate.run SET error = 'kept' WHERE run_id = $dead2");
q1("INSERT INTO migrate.run_table (run_id, target, source, load_order) VALUES ($dead1, 'customers', 'legacy.customers', 1)");
is(q1("SELECT migrate._catalog_cancel($dead1)"), 't', '_catalog_cancel: true for a running run');
like(events($dead1), qr/^cancel requested::t$/, '_catalog_cancel: its event');
is(q1("SELECT cancel_requested FROM migrate.run WHERE run_id = $dead1"), 't', '_catalog_cancel: the flag');

# the reap (migrate_status) and the coordinator agree
is(q1('SELECT migrate._reap()'), '2', '_reap: both dead runs');
is(q1("SELECT state, error FROM migrate.run WHERE run_id = $dead1"),
	'interrupted|the worker ended without finishing (server crash or terminated)',
	'_reap: interrupted, saying why');
is(q1("SELECT state, error FROM migrate.run WHERE run_id = $dead2"), 'interrupted|kept',
	'_reap: an error the run had is kept');
is(q1("SELECT state FROM migrate.run_table WHERE run_id = $dead1"), 'interrupted', '_reap: its table too');
like(events($dead1), qr/\|run interrupted:found without a live worker:t$/, '_reap: the event');
is(q1('SELECT migrate._reap()'), '0', '_reap: nothing left');

q1("INSERT INTO migrate.run (plan, batch_size, worker_pid, error) VALUES ('p', 100, 0, 'kept too')");
my $dead3 = q1("SELECT run_id FROM migrate.run WHERE state = 'running'");
q1('TRUNCATE customers');
my ($run2, $err2) = run_plan($node, 'p', batch_size => 100);
ok($run2, "the next run of the plan ($run2)") or diag $err2;
is(q1("SELECT state, error FROM migrate.run WHERE run_id = $dead3"), 'interrupted|kept too',
	'the next run marks the dead run interrupted, keeping its error');
is(events($dead3), 'run interrupted:found without a live worker:t',
	'the next run writes the event _reap writes');

# another role's runs and plans do not exist for it (row-level security):
# the writers check that as the caller before they write
q1("CREATE ROLE reader LOGIN");
($ret, $out, $stderr) = $node->psql('postgres',
	"SET ROLE reader; SELECT migrate._catalog_report($run, 'mine')");
like($stderr, qr/migration run $run does not exist/, 'a role that may not see the run cannot save its report');
($ret, $out, $stderr) = $node->psql('postgres',
	"SET ROLE reader; SELECT migrate._catalog_event(NULL, 'p', 'forged', NULL)");
like($stderr, qr/migration plan "p" does not exist/, 'nor write an event of the plan');
is(q1("SELECT count(*) FROM migrate.event WHERE event = 'forged'"), '0', 'no event was written');
is(q1("SELECT report FROM migrate.run WHERE run_id = $run"), '# report', 'the report is unchanged');

done_testing();
