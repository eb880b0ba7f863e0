# 011_sync_writers.pl: trickle sync (capture watermark and diff) against a
# source that concurrent writers change all along, through postgres_fdw.
#
#   - migrate_run(mode => 'incremental') arms capture and loads while the
#     writers (pgbench: inserts, updates, deletes and key changes; no
#     deletes and no key changes for watermark, which cannot see them) run,
#     and migrate_sync() passes run every second; a transaction that
#     updates a row, then commits seconds later (its watermark older than
#     positions taken meanwhile) must still arrive;
#   - a second sync of a plan while one runs is refused with 55006;
#   - a sync with thousands of pending changes is killed in the middle
#     (kill -9 of its worker for watermark, pg_terminate_backend for diff),
#     then run again: the same result;
#   - after the writers stop, a final sync: the target equals the source
#     (md5 of every row in key order), migrate_verify passes and
#     migrate_diff finds nothing; no reject is recorded twice.

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use IPC::Run;
use MigrateTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = start_node('sync', conf => { restart_after_crash => 'on', max_connections => 40 });
my $bindir = $node->config_data('--bindir');

$node->safe_psql('postgres', 'CREATE DATABASE migrate_src');
$node->safe_psql('migrate_src', q{
	CREATE TABLE tw (id int PRIMARY KEY, v text, n int NOT NULL, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
	CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS
	  $$BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END$$;
	CREATE TRIGGER stamp BEFORE UPDATE ON tw FOR EACH ROW EXECUTE FUNCTION stamp();
	INSERT INTO tw (id, v, n) SELECT g, md5(g::text), g % 10 FROM generate_series(1, 20000) g;
	CREATE TABLE td (id int PRIMARY KEY, v text, n int NOT NULL);
	INSERT INTO td SELECT g, md5(g::text), g % 10 FROM generate_series(1, 20000) g;
});
my $host = $node->host;
my $port = $node->port;
$node->safe_psql('postgres', qq{
	CREATE EXTENSION postgres_fdw;
	CREATE EXTENSION migrate;
	CREATE SERVER src FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '$host', port '$port', dbname 'migrate_src');
	CREATE USER MAPPING FOR CURRENT_USER SERVER src;
	CREATE SCHEMA legacy;
	IMPORT FOREIGN SCHEMA public FROM SERVER src INTO legacy;
	CREATE TABLE tw (id int PRIMARY KEY, v text, n int NOT NULL, updated_at timestamptz NOT NULL);
	CREATE TABLE td (id int PRIMARY KEY, v text, n int NOT NULL);
	-- the gate: applying key gate_key.k waits for advisory lock 4242
	CREATE TABLE gate_key (k int);
	CREATE FUNCTION gate(id int, v text) RETURNS text LANGUAGE plpgsql AS
	  \$\$BEGIN
	      IF id = (SELECT k FROM public.gate_key) THEN
	          PERFORM pg_advisory_lock(4242); PERFORM pg_advisory_unlock(4242);
	      END IF;
	      RETURN v;
	  END\$\$;
	SELECT migrate_plan('w', source_schema => 'legacy');
	SELECT migrate_table('w', 'tw', 'tw', watermark => 'updated_at', capture => 'watermark', lag => '1 minute');
	SELECT migrate_column('w', 'tw', 'v', 'public.gate(s.id, s.v)');
	SELECT migrate_plan('d', source_schema => 'legacy');
	SELECT migrate_table('d', 'td', 'td', capture => 'diff');
	SELECT migrate_column('d', 'td', 'v', 'public.gate(s.id, s.v)');
});

# the writers: single-statement transactions, none of which can fail
my $wscript = "$PostgreSQL::Test::Utils::tmp_check/writers_w.sql";
my $dscript = "$PostgreSQL::Test::Utils::tmp_check/writers_d.sql";
open(my $fh, '>', $wscript) or die;
print $fh q{\set id random(1, 20000)
\set nid random(20001, 60000)
UPDATE tw SET v = md5(random()::text), n = n + 1 WHERE id = :id;
INSERT INTO tw (id, v, n) VALUES (:nid, 'new', 1) ON CONFLICT (id) DO NOTHING;
};
close $fh;
open($fh, '>', $dscript) or die;
print $fh q{\set id random(1, 20000)
\set nid random(20001, 60000)
\set did random(1, 20000)
\set kid random(1, 20000)
UPDATE td SET v = md5(random()::text), n = n + 1 WHERE id = :id;
INSERT INTO td VALUES (:nid, 'new', 1) ON CONFLICT (id) DO NOTHING;
DELETE FROM td WHERE id = :did;
UPDATE td SET id = -id WHERE id = :kid;
};
close $fh;

sub start_writers
{
	my ($script, $seconds) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ "$bindir/pgbench", '-n', '-c', '2', '-R', '200', '-T', $seconds, '-f', $script,
		  '-h', $host, '-p', $port, 'migrate_src' ],
		'>', \$out, '2>', \$err);
	return { h => $h, out => \$out, err => \$err };
}

sub finish_writers
{
	my ($w, $name) = @_;
	$w->{h}->finish;
	is($w->{h}->result(0), 0, "$name: the writers ran without an error")
	  or diag ${ $w->{err} };
}

sub psql_result
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql);
	return ($ret, $out, $err);
}

sub checksums
{
	my ($table) = @_;
	return (
		$node->safe_psql('postgres', "SELECT count(*) || ' ' || md5(string_agg(t::text, ',' ORDER BY id)) FROM legacy.$table t"),
		$node->safe_psql('postgres', "SELECT count(*) || ' ' || md5(string_agg(t::text, ',' ORDER BY id)) FROM public.$table t"));
}

foreach my $case ([ 'w', 'tw', $wscript ], [ 'd', 'td', $dscript ])
{
	my ($plan, $table, $script) = @$case;

	# the load under live writers, then passes every second while they write
	my $writers = start_writers($script, 12);
	usleep(500_000);
	my $late;
	if ($plan eq 'w')
	{
		# updated now, committed in 6 s: its watermark is older than the
		# positions the passes take meanwhile
		$late = IPC::Run::start(
			[ "$bindir/psql", '-X', '-q', '-h', $host, '-p', $port, '-d', 'migrate_src', '-c',
			  "BEGIN; UPDATE tw SET v = 'late commit' WHERE id = 7; SELECT pg_sleep(6); COMMIT;" ],
			'>', \my $lout, '2>', \my $lerr);
	}
	my ($ret, $out, $err) = psql_result("SELECT migrate_run('$plan', mode => 'incremental')");
	is($ret, 0, "$plan: the incremental run under live writers succeeds") or diag $err;
	my $passes = 0;
	while ($writers->{h}->pumpable)
	{
		($ret, $out, $err) = psql_result("SELECT migrate_sync('$plan')");
		$passes++ if $ret == 0;
		diag "sync of $plan: $err" if $ret != 0;
		$writers->{h}->pump_nb;
		usleep(1_000_000);
	}
	finish_writers($writers, $plan);
	$late->finish if $late;
	cmp_ok($passes, '>=', 3, "$plan: $passes passes while the writers ran");

	# a second sync while one runs: 55006
	my $blocker = $node->background_psql('postgres', on_error_stop => 0);
	$blocker->query_safe("BEGIN; LOCK TABLE public.$table IN ACCESS EXCLUSIVE MODE");
	$node->safe_psql('postgres', "SELECT migrate_sync('$plan', wait => false)");
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM migrate.run WHERE plan = '$plan' AND mode = 'sync' AND state = 'running'");
	($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\nSELECT migrate_sync('$plan')");
	like($err, qr/55006/, "$plan: a second concurrent sync is refused with 55006");
	$blocker->query_safe('COMMIT');
	$blocker->quit;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM migrate.run WHERE plan = '$plan' AND state = 'running'");

	# thousands of changes pending, the sync killed in the middle
	$node->safe_psql('migrate_src', "UPDATE $table SET n = n + 100 WHERE id % 4 = 0");
	my $gated = $node->safe_psql('migrate_src', "SELECT id FROM $table WHERE id % 4 = 0 ORDER BY id OFFSET 2000 LIMIT 1");
	$node->safe_psql('postgres', "DELETE FROM gate_key; INSERT INTO gate_key VALUES ($gated)");
	my $gate = gate_close($node);
	$node->safe_psql('postgres', "SET migrate.batch_size = 200; SELECT migrate_sync('$plan', wait => false)");
	$node->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted")
	  or die "the sync did not reach the gate";
	my $applied_before = $node->safe_psql('postgres',
		"SELECT applied_updated FROM migrate.sync_state WHERE plan = '$plan'");
	my $pid = $node->safe_psql('postgres',
		"SELECT worker_pid FROM migrate.run WHERE plan = '$plan' AND state = 'running'");
	if ($plan eq 'w')
	{
		kill 'KILL', $pid;
		usleep(1_000_000);
		$node->poll_query_until('postgres', 'SELECT true') or die 'no restart';
		gate_open($gate);
	}
	else
	{
		$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
		gate_open($gate);
	}
	$node->safe_psql('postgres', 'DELETE FROM gate_key');
	my $state = $node->safe_psql('postgres',
		"SELECT DISTINCT run_state FROM migrate_status() WHERE run_id = (SELECT max(run_id) FROM migrate.run WHERE plan = '$plan')");
	isnt($state, 'running', "$plan: the killed sync is not left running ($state)");
	my $applied_after_kill = $node->safe_psql('postgres',
		"SELECT applied_updated FROM migrate.sync_state WHERE plan = '$plan'");
	cmp_ok($applied_after_kill, '>', $applied_before - 1, "$plan: batches committed before the kill stay applied");

	# again, and a final pass: the target is the source
	($ret, $out, $err) = psql_result("SELECT migrate_sync('$plan')");
	is($ret, 0, "$plan: the sync after the kill succeeds") or diag $err;
	($ret, $out, $err) = psql_result("SELECT migrate_sync('$plan')");
	is($ret, 0, "$plan: a final sync succeeds") or diag $err;
	my ($src, $tgt) = checksums($table);
	is($tgt, $src, "$plan: the target equals the source ($src)");
	is($node->safe_psql('postgres', "SELECT v FROM public.$table WHERE id = 7"),
		$node->safe_psql('postgres', "SELECT v FROM legacy.$table WHERE id = 7"),
		"$plan: the late commit arrived") if $plan eq 'w';
	is($node->safe_psql('postgres', "SELECT count(*) FROM migrate_diff('$plan', '$table')"), '0',
		"$plan: migrate_diff finds nothing");
	is($node->safe_psql('postgres', "SELECT bool_and(ok) FROM migrate_verify('$plan')"), 't',
		"$plan: migrate_verify passes");
	is($node->safe_psql('postgres',
		"SELECT count(*) FROM (SELECT target, source_key, reason FROM migrate.reject r JOIN migrate.run u USING (run_id)"
		. " WHERE u.plan = '$plan' GROUP BY 1, 2, 3 HAVING count(*) > 1) d"), '0',
		"$plan: no reject recorded twice");
}

$node->stop;
done_testing();
