# 006_stalled_source.pl: a source that stalls does not hold migrate, and the
# connections of src/remote.c follow their server and user mapping.
#
# The source table is locked (ACCESS EXCLUSIVE, by a session that keeps its
# transaction open) while a run reads it with the binary COPY reader, or
# while a comparison runs on it.  A reader that blocked in libpq would wait
# for the lock to be released; every bound below is far shorter than the
# test's own waits (the lock is held until the test releases it).
#
#   (a) migrate_cancel() of a run whose worker waits for the source's COPY:
#       the run is cancelled within seconds, the remote COPY is cancelled
#       too, and migrate_resume() then loads exactly the source's rows;
#   (b) pg_terminate_backend() of that worker: it exits within seconds,
#       the remote COPY is cancelled, the run is interrupted, and
#       migrate_resume() after the lock is released loads exactly the
#       source's rows (count and checksum);
#   (c) a comparison (migrate_verify(), migrate._compare_sides()) waiting
#       for the source ends at statement_timeout, remote statement included,
#       and so does a COPY that stalls in the middle of its rows;
#   (d) the connection is cached per user mapping (one remote backend for
#       repeated reads in a session), rebuilt after ALTER USER MAPPING or
#       ALTER SERVER changes an option (a wrong password fails, the right
#       one works again), and the remote session has postgres_fdw's
#       settings;
#   (e) postgres_fdw's password rule for non-superusers: refused before
#       connecting when the mapping has no password, and after connecting
#       when the server did not ask for it.

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use MigrateTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# far below the lock's duration, far above what a noisy machine needs
my $bound = 15;
# a wait this test did not foresee fails it (and stops its cluster) rather than hang
$SIG{ALRM} = sub { die "006_stalled_source.pl timed out\n" };
alarm 600;

my $node = start_node('stall');

# a role that must give its password over the socket (scram), for (d), (e)
{
	my $hba = $node->data_dir . '/pg_hba.conf';
	my $conf = slurp_file($hba);
	open(my $fh, '>', $hba) or die "$hba: $!";
	print $fh "local all regress_pw scram-sha-256\n", $conf;
	close $fh;
	$node->reload;
}

create_source($node, tables => [ { name => 'customers', rows => 3000 } ]);
create_plan($node, 'p', tables => ['customers'], gated => ['customers']);
my $src_sum = source_checksum($node, 'customers');
like($src_sum, qr/^3000:/, 'the source has 3000 rows');

# the COPY statements of the binary COPY reader running on the source
my $remote_copies = "SELECT count(*) FROM pg_stat_activity WHERE datname = 'migrate_src' "
  . "AND state = 'active' AND query LIKE 'COPY (SELECT %'";

# Poll $sql in $db until it returns 't', at most $secs seconds; returns the
# seconds it took, or undef.
sub poll_within
{
	my ($db, $sql, $secs) = @_;
	my $t0 = time;
	while (time - $t0 < $secs)
	{
		return time - $t0 if $node->safe_psql($db, $sql) eq 't';
		usleep(100_000);
	}
	return undef;
}

# A background session's query, with its own stderr.
sub bg_query
{
	my ($s, $sql) = @_;
	$s->{stderr} = '';
	my $out = $s->query($sql);
	return ($out, $s->{stderr});
}

# Start a run that waits at the gate (key $gkey), lock the source table,
# open the gate: the next batch's COPY waits for the lock.  Returns (run id,
# worker pid, lock session).
sub stall_run
{
	my ($gkey, $name) = @_;
	set_gate($node, customers => [$gkey]);
	my $gate = gate_close($node);
	my ($run, $err) = run_plan($node, 'p', batch_size => 500, wait => 'false');
	ok($run, "$name: run $run started without waiting") or diag $err;
	my $pid = worker_pid($node, 'p');
	is(gate_wait($node), $pid, "$name: the worker is at the gate");

	my $lock = $node->background_psql('migrate_src', on_error_stop => 0);
	$lock->query_safe('BEGIN; LOCK TABLE customers IN ACCESS EXCLUSIVE MODE');
	gate_open($gate);
	ok( defined poll_within('migrate_src',
			"SELECT ($remote_copies AND wait_event_type = 'Lock') = 1", 60),
		"$name: the next batch's COPY waits for the lock on the source");
	is( $node->safe_psql('postgres',
			"SELECT wait_event_type || ':' || wait_event FROM pg_stat_activity WHERE pid = $pid"),
		'Extension:Extension',
		"$name: the worker waits on its latch and socket, not inside libpq");
	return ($run, $pid, $lock);
}

sub resume_and_check
{
	my ($run, $name) = @_;
	my ($out, $err) = ('', '');
	$node->psql('postgres', "SET client_min_messages = warning; SELECT migrate_resume($run)",
		stdout => \$out, stderr => \$err);
	is($err, '', "$name: migrate_resume($run) works");
	is($node->safe_psql('postgres', "SELECT state FROM migrate.run WHERE run_id = $run"),
		'succeeded', "$name: the resumed run succeeded");
	is(table_checksum($node, 'postgres', 'customers'), $src_sum,
		"$name: the target holds exactly the source's rows (count and checksum)");
	return;
}

# --- (a) migrate_cancel() while the COPY waits for the source
{
	my $name = 'cancel';
	my ($run, $pid, $lock) = stall_run(700, $name);
	my $t0 = time;
	is($node->safe_psql('postgres', "SELECT migrate_cancel($run)"), 't',
		"$name: migrate_cancel($run) accepted");
	my $took = poll_within('postgres',
		"SELECT state <> 'running' FROM migrate.run WHERE run_id = $run", $bound);
	ok(defined $took, "$name: the run ended within $bound s while the source is still locked")
	  and note sprintf("%s: the run ended %.1f s after migrate_cancel()", $name, $took);
	is(run_row($node, $run)->{state}, 'cancelled', "$name: the run is cancelled");
	ok(defined poll_within('migrate_src', "SELECT ($remote_copies) = 0", $bound),
		"$name: the remote COPY was cancelled too");
	ok($node->log_contains(qr/stopped waiting for the server of foreign table customers: the run is cancelled/),
		"$name: the worker says why it stopped waiting");
	$lock->quit;
	my $rows = check_recorded_invariants($node, $run, name => $name);
	is($rows->{customers}{written}, 1000, "$name: the two batches before the stall are kept");
	resume_and_check($run, $name);
	$node->safe_psql('postgres', 'TRUNCATE customers');
}

# --- (b) pg_terminate_backend() of the worker while the COPY waits
{
	my $name = 'terminate';
	my ($run, $pid, $lock) = stall_run(1200, $name);
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
	my $took = poll_within('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid", $bound);
	ok(defined $took, "$name: the worker exited within $bound s while the source is still locked")
	  and note sprintf("%s: the worker exited %.1f s after pg_terminate_backend()", $name, $took);
	ok(defined poll_within('migrate_src', "SELECT ($remote_copies) = 0", $bound),
		"$name: the remote COPY was cancelled too");
	$lock->quit;
	is($node->safe_psql('postgres', "SELECT DISTINCT run_state FROM migrate_status($run)"),
		'interrupted', "$name: the run is interrupted");
	my $rows = check_recorded_invariants($node, $run, name => $name);
	is($rows->{customers}{written}, 1500, "$name: the three batches before the stall are kept");
	resume_and_check($run, $name);
}

# --- (c) a comparison waiting for the source ends at statement_timeout
# (its source statement is a local one: what postgres_fdw deparses of it is sent)
my $compare = "SELECT migrate._compare_sides('legacy.customers'::regclass, "
  . "'SELECT count(*) FROM legacy.customers', 'SELECT count(*) FROM customers', NULL)";
{
	my $name = 'verify';
	my ($out, $err) = ('', '');
	$node->psql('postgres', 'SELECT bool_and(ok) FROM migrate_verify(\'p\')', stdout => \$out, stderr => \$err);
	is($out, 't', "$name: the run verifies") or diag $err;

	my $lock = $node->background_psql('migrate_src', on_error_stop => 0);
	$lock->query_safe('BEGIN; LOCK TABLE customers IN ACCESS EXCLUSIVE MODE');
	for my $sql ("SELECT * FROM migrate_verify('p')", $compare)
	{
		my $t0 = time;
		$node->psql('postgres', "SET statement_timeout = '1s'; $sql",
			stdout => \$out, stderr => \$err, timeout => 120);
		my $took = time - $t0;
		like($err, qr/canceling statement due to statement timeout/,
			"$name: $sql ends at statement_timeout");
		ok($took < $bound, sprintf("%s: within %.1f s, while the source is still locked", $name, $took));
		ok( defined poll_within('migrate_src',
				"SELECT count(*) = 0 FROM pg_stat_activity WHERE datname = 'migrate_src' "
				  . "AND state = 'active' AND wait_event_type = 'Lock'", $bound),
			"$name: the remote statement was cancelled too");
	}
	$lock->quit;
	is($node->safe_psql('postgres', $compare), '{3000,3000}', "$name: and works again");
}

# --- (c') a COPY that stalls after it has started (the source sends its
# first 1000 rows, then computes the next one for ten minutes) ends at
# statement_timeout, and the session's next read works
{
	my $name = 'slow copy';
	$node->safe_psql('migrate_src',
		'CREATE VIEW customers_slow AS SELECT * FROM customers WHERE id <= 1000 OR pg_sleep(600) IS NOT NULL');
	$node->safe_psql('postgres',
		'IMPORT FOREIGN SCHEMA public LIMIT TO (customers_slow) FROM SERVER src INTO legacy');
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	my $t0 = time;
	my ($out, $err) = bg_query($s,
		"SET statement_timeout = '1s'; SELECT count(*) FROM migrate._copy_source('legacy.customers_slow'::regclass, "
		  . "'id', NULL::int, 3000) AS s(id int, parent_id int, amount numeric(12,2), note text, day date)");
	my $took = time - $t0;
	like($err, qr/canceling statement due to statement timeout/, "$name: ends at statement_timeout");
	ok($took < $bound, sprintf("%s: within %.1f s, while the source still computes", $name, $took));
	ok( defined poll_within('migrate_src',
			"SELECT count(*) = 0 FROM pg_stat_activity WHERE datname = 'migrate_src' "
			  . "AND state = 'active' AND query LIKE 'COPY (SELECT %customers_slow%'", $bound),
		"$name: the remote COPY was cancelled too");
	($out, $err) = bg_query($s, "RESET statement_timeout; SELECT count(*) FROM migrate._copy_source("
		  . "'legacy.customers'::regclass, 'id', 100, 400) "
		  . "AS s(id int, parent_id int, amount numeric(12,2), note text, day date)");
	is($out, '300', "$name: the session's next COPY works") or diag $err;
	$s->quit;
}

# --- (d) one connection per user mapping, rebuilt when its options change
my $remote_pid = "SELECT pid FROM pg_stat_activity WHERE datname = 'migrate_src' "
  . "AND application_name = 'migrate' AND usename = 'regress_pw'";
$node->safe_psql(
	'migrate_src', q{
	CREATE ROLE regress_pw LOGIN PASSWORD 'secret';
	GRANT SELECT ON customers TO regress_pw;
	-- bytea: postgres_fdw ships no aggregate of a text in the default collation
	CREATE VIEW session_settings AS
	SELECT concat_ws('|', current_setting('search_path'), current_setting('TimeZone'),
	                 current_setting('DateStyle'), current_setting('IntervalStyle'),
	                 current_setting('extra_float_digits'),
	                 current_setting('transaction_read_only'))::bytea AS s;
	GRANT SELECT ON session_settings TO regress_pw;
});
$node->safe_psql('postgres',
	'IMPORT FOREIGN SCHEMA public LIMIT TO (session_settings) FROM SERVER src INTO legacy');
$node->safe_psql(
	'postgres', q{
	CREATE ROLE app;
	GRANT USAGE ON SCHEMA migrate, legacy TO app;
	GRANT SELECT ON legacy.customers, legacy.session_settings, customers TO app;
	GRANT EXECUTE ON FUNCTION migrate._compare_sides(regclass, text, text, text[]) TO app;
	GRANT EXECUTE ON FUNCTION migrate._copy_source(regclass, text, anyelement, anyelement) TO app;
	CREATE USER MAPPING FOR app SERVER src OPTIONS (user 'regress_pw', password 'secret');
});
my $copy = "SELECT count(*) FROM migrate._copy_source('legacy.customers'::regclass, 'id', 100, 400) "
  . "AS s(id int, parent_id int, amount numeric(12,2), note text, day date)";
{
	my $name = 'cache';
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	my ($out, $err) = bg_query($s, "SET ROLE app; $compare");
	is($out, '{3000,3000}', "$name: a non-superuser's comparison with a password works") or diag $err;
	my $pid1 = $node->safe_psql('migrate_src', $remote_pid);
	like($pid1, qr/^\d+$/, "$name: one remote backend of the session");
	($out, $err) = bg_query($s, $copy);
	is($out, '300', "$name: the COPY reader reads on the same connection") or diag $err;
	($out, $err) = bg_query($s, $compare);
	is($node->safe_psql('migrate_src', $remote_pid), $pid1,
		"$name: the same remote backend serves every read of the session");
	($out, $err) = bg_query($s,
		"SELECT convert_from(decode(substr((migrate._compare_sides('legacy.session_settings'::regclass, "
		  . "'SELECT string_agg(s, ''''::bytea) FROM legacy.session_settings', 'SELECT 1', NULL))[1], 3), 'hex'), 'UTF8')");
	like($out, qr/^pg_catalog\|UTC\|ISO, \w+\|postgres\|3\|on$/,
		"$name: the remote session has postgres_fdw's settings, read-only") or diag $err;

	# another session changes the password: the next use reconnects and fails
	$node->safe_psql('postgres',
		"ALTER USER MAPPING FOR app SERVER src OPTIONS (SET password 'wrong')");
	($out, $err) = bg_query($s, $compare);
	like($err, qr/password authentication failed for user "regress_pw"/,
		"$name: after ALTER USER MAPPING the next comparison uses the wrong password");
	ok(defined poll_within('migrate_src', "SELECT count(*) = 0 FROM ($remote_pid) b", $bound),
		"$name: the old remote backend is gone");
	($out, $err) = bg_query($s, $copy);
	like($err, qr/could not connect to the server for foreign table customers: .*password authentication failed/,
		"$name: and so does the COPY reader");
	$node->safe_psql('postgres',
		"ALTER USER MAPPING FOR app SERVER src OPTIONS (SET password 'secret')");
	($out, $err) = bg_query($s, $compare);
	is($out, '{3000,3000}', "$name: the right password works again") or diag $err;
	my $pid2 = $node->safe_psql('migrate_src', $remote_pid);
	isnt($pid2, $pid1, "$name: on a new connection");

	# ALTER SERVER: the server's options are followed too
	$node->safe_psql('postgres', "ALTER SERVER src OPTIONS (SET dbname 'no_such_db')");
	($out, $err) = bg_query($s, $copy);
	like($err, qr/database "no_such_db" does not exist/,
		"$name: after ALTER SERVER the next read connects with the new options");
	$node->safe_psql('postgres', "ALTER SERVER src OPTIONS (SET dbname 'migrate_src')");
	($out, $err) = bg_query($s, $copy);
	is($out, '300', "$name: and with the old ones again") or diag $err;

	# an error in the middle of a use does not spoil the next one
	($out, $err) = bg_query($s,
		"SELECT migrate._compare_sides('legacy.customers'::regclass, "
		  . "'SELECT sum(1 / (id - id)) FROM legacy.customers', 'SELECT 1', NULL)");
	like($err, qr/division by zero/, "$name: a failing remote statement raises its error");
	($out, $err) = bg_query($s, $compare);
	is($out, '{3000,3000}', "$name: the next comparison works") or diag $err;
	$s->quit;
}

# --- (e) postgres_fdw's password rule for non-superusers
{
	my $name = 'password rule';
	$node->safe_psql(
		'postgres', q{
		CREATE ROLE app2;
		GRANT USAGE ON SCHEMA migrate, legacy TO app2;
		GRANT SELECT ON legacy.customers, customers TO app2;
		GRANT EXECUTE ON FUNCTION migrate._compare_sides(regclass, text, text, text[]) TO app2;
		CREATE USER MAPPING FOR app2 SERVER src OPTIONS (user 'no_such_remote_role');
	});
	my ($out, $err) = ('', '');
	$node->psql('postgres', "SET ROLE app2; $compare", stdout => \$out, stderr => \$err);
	like($err, qr/password is required to read foreign table customers/,
		"$name: no password in the mapping: refused");
	unlike($err, qr/no_such_remote_role/,
		"$name: before connecting (the remote role does not even exist)");

	# a password the server does not ask for (trust) does not count
	$node->safe_psql('migrate_src', 'CREATE ROLE regress_trust LOGIN');
	$node->safe_psql('postgres',
		"ALTER USER MAPPING FOR app2 SERVER src OPTIONS (SET user 'regress_trust', ADD password 'x')");
	$node->psql('postgres', "SET ROLE app2; $compare", stdout => \$out, stderr => \$err);
	like($err, qr/password is required to read foreign table customers/,
		"$name: a password the server did not ask for: refused after connecting");

	# unless a superuser waived it
	$node->safe_psql('postgres',
		"ALTER USER MAPPING FOR app2 SERVER src OPTIONS (ADD password_required 'false')");
	$node->safe_psql('migrate_src', 'GRANT SELECT ON customers TO regress_trust');
	$node->psql('postgres', "SET ROLE app2; $compare", stdout => \$out, stderr => \$err);
	is($out, '{3000,3000}', "$name: password_required 'false' set by a superuser waives it")
	  or diag $err;
}

is($node->safe_psql('postgres', "SELECT count(*) FROM migrate.run WHERE state = 'running'"),
	'0', 'no run is left running');
$node->stop;
done_testing();
