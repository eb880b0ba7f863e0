# 008_run_as_owner.pl: a run executes as its plan's owner, whoever starts
# it (issue 11, docs/security.md).
#
# A pg_cron job (pg_cron 1.4, one-minute resolution, jobs run through
# libpq as the role that scheduled them: here the superuser) runs a
# non-superuser's plan: the owner's mapping SQL records current_user, which
# must be the owner, not the job's superuser; run_by is the job's role.  A
# plan owned by a NOLOGIN group role runs too (the workers need no LOGIN
# of the owner), by a job and by a member of the group, with helpers
# (parallel 2: each helper becomes the owner as well).
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
	'owner',
	conf => {
		shared_preload_libraries => 'pg_cron',
		'cron.database_name' => 'postgres',
		'cron.host' => '@HOST@',    # the cluster listens on its socket only
	});
sub q1 { return $node->safe_psql('postgres', $_[0]); }

my $superuser = q1('SELECT current_user');

# alice: a non-superuser with the documented grants only; team: a NOLOGIN
# group role alice is a member of.  A local source schema, a target per
# plan, and a log of who ran the owner's SQL.
q1(q{
	CREATE EXTENSION migrate;
	CREATE EXTENSION pg_cron;
	CREATE ROLE regress_alice LOGIN;
	CREATE ROLE regress_team NOLOGIN;
	GRANT regress_team TO regress_alice;
	CREATE SCHEMA src;
	CREATE TABLE src.items (id int PRIMARY KEY, v text);
	INSERT INTO src.items SELECT g, 'v' || g FROM generate_series(1, 3000) g;
	GRANT USAGE ON SCHEMA src TO regress_alice, regress_team;
	GRANT SELECT ON src.items TO regress_alice, regress_team;
	CREATE SCHEMA tgt;
	GRANT USAGE ON SCHEMA tgt TO regress_alice, regress_team;
	CREATE TABLE tgt.alice_items (id int PRIMARY KEY, v text);
	GRANT SELECT, INSERT, UPDATE, DELETE ON tgt.alice_items TO regress_alice;
	CREATE TABLE tgt.team_items (id int PRIMARY KEY, v text);
	GRANT SELECT, INSERT, UPDATE, DELETE ON tgt.team_items TO regress_team;
	CREATE TABLE public.who_ran (who name, pid int, v text);
	GRANT INSERT ON public.who_ran TO regress_alice, regress_team;
	CREATE FUNCTION public.record_who(v text) RETURNS text LANGUAGE plpgsql AS $$
	BEGIN
	    INSERT INTO public.who_ran VALUES (current_user, pg_backend_pid(), v);
	    RETURN v;
	END $$;
	-- the plans, defined by their owners
	SET ROLE regress_alice;
	SELECT migrate_plan('p_alice', source_schema => 'src', target_schema => 'tgt');
	SELECT migrate_table('p_alice', 'src.items', 'alice_items', mode => 'upsert');
	SELECT migrate_column('p_alice', 'alice_items', 'v', 'public.record_who(s.v)');
	SET ROLE regress_team;
	SELECT migrate_plan('p_team', source_schema => 'src', target_schema => 'tgt');
	SELECT migrate_table('p_team', 'src.items', 'team_items', mode => 'upsert');
	SELECT migrate_column('p_team', 'team_items', 'v', 'public.record_who(s.v)');
	RESET ROLE;
});
is(q1("SELECT string_agg(plan_name || ':' || owner::text, ',' ORDER BY plan_name) FROM migrate.plan"),
	'p_alice:regress_alice,p_team:regress_team', 'each plan belongs to the role that defined it');
is(q1("SELECT rolsuper OR rolcanlogin FROM pg_roles WHERE rolname = 'regress_team'"),
	'f', 'the group role is neither superuser nor allowed to log in');

# two jobs of the superuser, in one transaction so that they fire together
$node->safe_psql('postgres', 'ALTER DATABASE postgres SET migrate.batch_size = 500');
sleep(1) while (localtime)[0] >= 55;
q1(q{SELECT cron.schedule('run_alice', '* * * * *', $$SELECT migrate_run('p_alice')$$),
            cron.schedule('run_team', '* * * * *', $$SELECT migrate_run('p_team')$$)});
is(q1("SELECT string_agg(DISTINCT username, ',') FROM cron.job"), $superuser,
	'the jobs belong to the superuser');
$node->poll_query_until('postgres',
	"SELECT count(*) >= 2 FROM cron.job_run_details WHERE status IN ('succeeded', 'failed')")
  or die 'the jobs did not run';
q1("SELECT cron.unschedule('run_alice'); SELECT cron.unschedule('run_team')");
is(q1("SELECT string_agg(status, ',') FROM (SELECT DISTINCT ON (jobid) * FROM cron.job_run_details"
	  . " ORDER BY jobid, start_time) d"),
	'succeeded,succeeded', 'both jobs succeeded')
  or diag q1('SELECT status, return_message FROM cron.job_run_details');

my $run_alice = q1("SELECT min(run_id) FROM migrate.run WHERE plan = 'p_alice'");
my $run_team = q1("SELECT min(run_id) FROM migrate.run WHERE plan = 'p_team'");
is(wait_run_end($node, $run_alice), 'succeeded', 'the job ran alice\'s plan');
is(wait_run_end($node, $run_team), 'succeeded', 'the job ran the group\'s plan');
is(q1("SELECT run_by || ',' || owner::text FROM migrate.run WHERE run_id = $run_alice"),
	"$superuser,regress_alice", 'run_by is the job\'s role, the owner is alice');
is(q1("SELECT string_agg(who || ' ' || n, ',' ORDER BY who)"
	  . " FROM (SELECT who, count(*) AS n FROM who_ran GROUP BY who) w"),
	'regress_alice 3000,regress_team 3000',
	'every row was mapped as its plan\'s owner (alice, the group), none as the job\'s superuser');
is(q1("SELECT string_agg(DISTINCT actor, ',') FROM migrate.event WHERE run_id = $run_alice"),
	'regress_alice', 'the run\'s events are in alice\'s name');
is(q1('SELECT count(*) FROM tgt.alice_items'), '3000', 'alice\'s target is loaded');
is(q1("SELECT run_by || ',' || owner::text FROM migrate.run WHERE run_id = $run_team"),
	"$superuser,regress_team", 'the group\'s run: run by the job, owned by the group');
is(q1('SELECT count(*) FROM tgt.team_items'), '3000', 'the group\'s target is loaded');

# a member of the group runs the group's plan, with a helper worker
q1('TRUNCATE who_ran');
my ($out, $err) = ('', '');
$node->psql('postgres',
	"SET client_min_messages = warning; SET ROLE regress_alice;"
	  . " SELECT migrate_run('p_team', parallel => 2);",
	stdout => \$out, stderr => \$err, on_error_stop => 0);
my ($run_par) = $out =~ /^(\d+)$/m;
ok($run_par, "a member of the group ran its plan with parallel 2 ($err)");
is(q1("SELECT state || ',' || parallel || ',' || run_by || ',' || owner::text"
	  . " FROM migrate.run WHERE run_id = $run_par"),
	'succeeded,2,regress_alice,regress_team', 'it ran as the group, with two workers, run by alice');
is(q1("SELECT string_agg(DISTINCT who, ',') FROM who_ran"), 'regress_team',
	'every worker mapped its rows as the group');
cmp_ok(q1("SELECT count(DISTINCT worker_pid) FROM migrate.run_range WHERE run_id = $run_par"),
	'>=', 1, 'its units were worked by the run\'s workers');

# bob, not a member, cannot run it; nor can the group's plan be run by a
# role that is not a member even though it may log in
q1('CREATE ROLE regress_bob LOGIN');
($out, $err) = ('', '');
$node->psql('postgres', "\\set VERBOSITY verbose\nSET ROLE regress_bob; SELECT migrate_run('p_team');",
	stdout => \$out, stderr => \$err, on_error_stop => 0);
like($err, qr/ERROR:  42704: migration plan "p_team" does not exist/,
	'a role that is no member of the owner does not see the plan');

$node->stop;
done_testing();
