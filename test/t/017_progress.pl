# 017_progress.pl: live progress NOTICEs of a waiting migrate_run() come
# DURING a table's load, every migrate.progress_interval (the caller's),
# with the table's total when several workers load it, and not at all with
# an interval of 0.
#
# No sleep decides anything here: the run is stopped at exact keys by
# gates, advisory locks held by a session of the test, which a mapping
# expression waits for at a gated key (p17_gate(), like MigrateTest.pm's
# test_gate() but with a lock per key, so the gates open one by one).
# While the worker waits at a gate, the committed rows stay where they are,
# so each line's count is known exactly; the lines must arrive before the
# last gate opens (the run cannot end before that).
#
#   1. one worker, batches of 100, gates at keys 301 and 601 of 1000 rows:
#      lines "300 of ~1000" arrive while the worker waits at the first
#      gate, "600 of ~1000" at the second; at least two lines, their counts
#      never decrease and increase from gate to gate; then the final line.
#   2. parallel 2 on one table of 2000 rows (4 key ranges of 500): both
#      workers wait at a gate (keys 201 and 701), the line says 400, the
#      table's total (200 + 200), and there is one line per interval, not
#      one per worker.
#   3. interval 0: a worker waits at a gate for several intervals' worth of
#      time; no progress line, the final line still comes.
#   4. a cancelled wait (pg_cancel_backend of the caller, as Ctrl-C) while
#      lines come: the call returns at once and the run stops.
#   5. migrate_resume() of that run, waiting: lines as well, with the
#      table's rows so far (those of the first call included).

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use IPC::Run;
use MigrateTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = start_node('progress');
create_source($node,
	tables => [ { name => 'big', rows => 1000 }, { name => 'wide', rows => 2000 } ]);
create_plan($node, 'p17', tables => ['big']);
create_plan($node, 'p17par', tables => ['wide']);
$node->safe_psql(
	'postgres', q{
	CREATE TABLE p17_gate_key (tab text, key bigint, lock int NOT NULL, PRIMARY KEY (tab, key));
	CREATE FUNCTION p17_gate(p_tab text, p_key bigint, p_value text)
	RETURNS text LANGUAGE plpgsql VOLATILE AS $$
	DECLARE
	    l int := (SELECT lock FROM p17_gate_key WHERE tab = p_tab AND key = p_key);
	BEGIN
	    IF l IS NOT NULL THEN
	        PERFORM pg_advisory_lock_shared(l);
	        PERFORM pg_advisory_unlock_shared(l);
	    END IF;
	    RETURN p_value;
	END $$;
	SELECT migrate_column('p17', 'big', 'note', 'p17_gate(''big'', s.id, s.note)');
	SELECT migrate_column('p17par', 'wide', 'note', 'p17_gate(''wide'', s.id, s.note)');
	-- the run's row estimate of a foreign table is its reltuples
	ANALYZE legacy.big;
	ANALYZE legacy.wide;
});
is($node->safe_psql('postgres',
		"SELECT string_agg(reltuples::bigint::text, ',' ORDER BY relname) FROM pg_class "
		  . "WHERE relname IN ('big', 'wide') AND relnamespace = 'legacy'::regnamespace"),
	'1000,2000', 'the foreign tables have row estimates');

# set_gates(tab => { key => lock, ... }): the gated keys (replaces all)
sub set_gates
{
	my (%g) = @_;
	my $sql = "DELETE FROM p17_gate_key;\n";
	for my $t (sort keys %g)
	{
		$sql .= "INSERT INTO p17_gate_key VALUES ('$t', $_, $g{$t}{$_});\n"
		  for sort keys %{ $g{$t} };
	}
	$node->safe_psql('postgres', $sql);
	return;
}

# a session holding the given advisory locks
sub hold_locks
{
	my @locks = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	$s->query_safe('SELECT ' . join(', ', map { "pg_advisory_lock($_)" } @locks));
	return $s;
}

# wait until n backends wait for advisory lock $lock
sub wait_at_gate
{
	my ($lock, $n) = @_;
	$node->poll_query_until('postgres',
		"SELECT count(*) = $n FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 "
		  . "AND objid = $lock AND NOT granted")
	  or die "nobody reached gate $lock";
	return;
}

# a background session that calls migrate_run() with NOTICEs on
sub start_waiting_run
{
	my ($plan, %o) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	my $args = "'$plan'" . ($o{parallel} ? ", parallel => $o{parallel}" : '');
	$s->query_until(qr/starting run/,
		"\\echo starting run\n"
		  . "SET client_min_messages = notice;\n"
		  . "SET migrate.batch_size = $o{batch_size};\n"
		  . "SET migrate.progress_interval = $o{interval};\n"
		  . "SELECT 'run ' || migrate_run($args);\n");
	note 'the run started';
	return $s;
}

# pump the session until its stderr matches $re (at most 60 s); true if it did
sub wait_stderr
{
	my ($s, $re) = @_;
	my $deadline = time + 60;
	$s->{run}->pump_nb;
	until (messages($s->{stderr}) =~ $re)
	{
		if (time > $deadline || !$s->{run}->pumpable)
		{
			diag "no $re in stderr: $s->{stderr}\nstdout: $s->{stdout}";
			return 0;
		}
		$s->{run}->pump;
	}
	return 1;
}

# pump the session until its stderr has n progress lines of table t at
# rows done (at most 60 s); true if it did
sub wait_for_lines
{
	my ($s, $t, $done, $n) = @_;
	my $deadline = time + 60;
	$s->{run}->pump_nb;
	until (grep({ $_->[0] == $done } progress_lines($s->{stderr}, $t)) >= $n)
	{
		return 0 if time > $deadline || !$s->{run}->pumpable;
		$s->{run}->pump;
	}
	return 1;
}

# psql's messages without the place it read the statement from
# ("psql:<stdin>:7: NOTICE:  ..." -> "NOTICE:  ...")
sub messages
{
	my ($text) = @_;
	$text =~ s/^psql:\S+:\d+: //mg;
	return $text;
}

# the progress lines of table $t in psql's stderr $text: list of
# [rows done, line]
sub progress_lines
{
	my ($text, $t) = @_;
	return map { [ $_ =~ /: (\d+) (?:of|rows)/, $_ ] }
	  grep { /^NOTICE:  loading \Q$t\E: / } split /\n/, messages($text);
}

# wait for the session's call to return; its stdout and stderr
sub finish
{
	my ($s) = @_;
	my $out = $s->query('SELECT 1');
	my $err = messages($s->{stderr});
	$s->quit;
	return ($out, $err);
}

my $line_re = qr/^NOTICE:  loading big: (\d+) of ~1000 rows \((\d+\.\d)%\), (\d+) rows\/s, ETA ([^,]+), (\d+) rejected$/;

# ---------------------------------------------------------------------
# 1. one worker, two gates
# ---------------------------------------------------------------------
set_gates(big => { 301 => 1701, 601 => 1702 });
my $holder = hold_locks(1701, 1702);
my $s = start_waiting_run('p17', batch_size => 100, interval => 1);
wait_at_gate(1701, 1);
ok(wait_stderr($s, qr/^NOTICE:  loading big: 300 of ~1000 rows/m),
	'1: a line says 300 of ~1000 while the worker waits at the first gate');
is($node->safe_psql('postgres',
		"SELECT rows_read FROM migrate.run_table WHERE run_id = (SELECT max(run_id) FROM migrate.run) AND target = 'big'::regclass"),
	'300', '1: ... which is what the worker committed');
$holder->query_safe('SELECT pg_advisory_unlock(1701)');
wait_at_gate(1702, 1);
ok(wait_stderr($s, qr/^NOTICE:  loading big: 600 of ~1000 rows/m),
	'1: a line says 600 of ~1000 while the worker waits at the second gate');
my $before = messages($s->{stderr});
my @lines = progress_lines($before, 'big');
cmp_ok(scalar(@lines), '>=', 2, '1: at least two progress lines before the last gate opens')
  or diag $before;
my @counts = map { $_->[0] } @lines;
ok(!grep({ $counts[$_] < $counts[ $_ - 1 ] } 1 .. $#counts), '1: the counts never decrease')
  or diag "@counts";
cmp_ok($counts[-1], '>', $counts[0], '1: the counts increase') or diag "@counts";
is(scalar(grep { !/$line_re/ } map { $_->[1] } @lines), 0,
	'1: every line has table, rows of ~estimate, percent, rows/s, ETA, rejects')
  or diag $before;
for my $l (grep { $_->[0] == 300 || $_->[0] == 600 } @lines)
{
	my ($done, $pct, $rate, $eta, $rej) = $l->[1] =~ $line_re;
	is($pct, sprintf('%.1f', $done / 10), "1: $done rows are $pct%");
	is($rej, 0, "1: $done rows, 0 rejected");
	like($eta, qr/^\d+ (s|min \d+ s)$/, "1: $done rows, an ETA ($eta)");
}
unlike($before, qr/loaded big:/, '1: the table had not ended');
$holder->quit;
my ($out, $err) = finish($s);
like($out, qr/^run \d+$/m, '1: the call returned the run id');
like($err, qr/^NOTICE:  loaded big: 1000 read, 1000 written, 0 rejected/m,
	'1: the final line of the table stays');
like($err, qr/^NOTICE:  run \d+ succeeded$/m, '1: the run succeeded');
is($node->safe_psql('postgres', 'SELECT count(*) FROM big'), '1000', '1: all rows loaded');

# ---------------------------------------------------------------------
# 2. parallel 2: the table's total, one line per interval
# ---------------------------------------------------------------------
set_gates(wide => { 201 => 1711, 701 => 1711 });
$holder = hold_locks(1711);
my $t0 = time;
$s = start_waiting_run('p17par', batch_size => 100, interval => 1, parallel => 2);
wait_at_gate(1711, 2);
is($node->safe_psql('postgres',
		"SELECT string_agg(rows_read::text, ',' ORDER BY range_no) FROM migrate.run_range "
		  . "WHERE run_id = (SELECT max(run_id) FROM migrate.run) AND state = 'running'"),
	'200,200', '2: two workers wait at their gates, 200 rows committed each');
ok(wait_stderr($s, qr/^NOTICE:  loading wide: 400 of ~2000 rows \(20\.0%\)/m),
	'2: the line gives the table total, 400 of ~2000 (20.0%)');
# more lines at 400, to count the lines over a few intervals
ok(wait_for_lines($s, 'wide', 400, 3), '2: and again in the next intervals');
my $elapsed = time - $t0;
@lines = progress_lines($s->{stderr}, 'wide');
cmp_ok(scalar(@lines), '<=', int($elapsed) + 1,
	sprintf('2: %d lines in %.1f s at an interval of 1 s: one per interval, not per worker',
		scalar(@lines), $elapsed));
$holder->quit;
($out, $err) = finish($s);
like($err, qr/^NOTICE:  loaded wide: 2000 read, 2000 written, 0 rejected.* 4 units\)$/m,
	'2: the final line of the table stays');
is($node->safe_psql('postgres', 'SELECT count(*) FROM wide'), '2000', '2: all rows loaded');

# ---------------------------------------------------------------------
# 3. interval 0: none
# ---------------------------------------------------------------------
$node->safe_psql('postgres', 'TRUNCATE big');
set_gates(big => { 301 => 1721 });
$holder = hold_locks(1721);
$s = start_waiting_run('p17', batch_size => 100, interval => 0);
wait_at_gate(1721, 1);
# proving an absence takes time: 3 s would have given 3 lines at 1 s
usleep(3_000_000);
$s->{run}->pump_nb;
$before = messages($s->{stderr});
like($before, qr/^NOTICE:  run \d+ of plan "p17": 1 table, 1 worker$/m,
	'3: the run started and said so');
is(scalar(progress_lines($before, 'big')), 0, '3: no progress line with interval 0')
  or diag $before;
$holder->quit;
($out, $err) = finish($s);
is(scalar(progress_lines($err, 'big')), 0, '3: none at all');
like($err, qr/^NOTICE:  loaded big: 1000 read, 1000 written/m, '3: the final line stays');

# ---------------------------------------------------------------------
# 4. a cancelled wait while lines come
# ---------------------------------------------------------------------
$node->safe_psql('postgres', 'TRUNCATE big');
set_gates(big => { 301 => 1731 });
$holder = hold_locks(1731);
$s = start_waiting_run('p17', batch_size => 100, interval => 1);
wait_at_gate(1731, 1);
ok(wait_stderr($s, qr/^NOTICE:  loading big: 300 of ~1000 rows/m), '4: lines come');
my $caller = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT ''run '' || migrate_run(''p17'')%' AND state = 'active'");
my $c0 = time;
$node->safe_psql('postgres', "SELECT pg_cancel_backend($caller)");
ok(wait_stderr($s, qr/ERROR:  canceling statement due to user request/),
	'4: the cancelled call returns');
cmp_ok(time - $c0, '<', 5, '4: at once, while the worker still waits at the gate');
$holder->quit;
my $run = $node->safe_psql('postgres', "SELECT max(run_id) FROM migrate.run WHERE plan = 'p17'");
is(wait_run_end($node, $run), 'cancelled', '4: the run stops at the next batch boundary');
$s->quit;

# ---------------------------------------------------------------------
# 5. migrate_resume() waits the same way
# ---------------------------------------------------------------------
my $at = $node->safe_psql('postgres',
	"SELECT rows_read FROM migrate.run_table WHERE run_id = $run");
set_gates(big => { 701 => 1741 });
$holder = hold_locks(1741);
$s = $node->background_psql('postgres', on_error_stop => 0);
$s->query_until(qr/starting resume/,
	"\\echo starting resume\n"
	  . "SET client_min_messages = notice;\n"
	  . "SET migrate.progress_interval = 1;\n"
	  . "SELECT 'run ' || migrate_resume($run);\n");
wait_at_gate(1741, 1);
ok(wait_stderr($s, qr/^NOTICE:  loading big: 700 of ~1000 rows \(70\.0%\)/m),
	"5: the resumed run (cancelled at $at rows) prints the table's rows so far, 700");
$holder->quit;
($out, $err) = finish($s);
like($out, qr/^run $run$/m, '5: migrate_resume() returned the run');
like($err, qr/^NOTICE:  loaded big: 1000 read, 1000 written/m, '5: the final line of the table');
is($node->safe_psql('postgres', 'SELECT count(*) FROM big'), '1000', '5: all rows loaded');

$node->stop;
done_testing();
