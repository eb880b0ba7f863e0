# 012_trigger_capture.pl: capture => 'trigger' with real concurrent writers,
# on a local source table and on a postgres_fdw loopback source.
#
# One cluster (MigrateTest.pm): the remote source migrate_src.items behind
# legacy.items, whose capture the "DBA" installs with the script of
# migrate_capture_sql(); the local source app.orders, written by an
# application role with DML only (no right on the change table nor on
# migrate's catalog).  A rule (amount >= 0) quarantines rows.  Checked:
#
#   - migrate_run(plan, mode => 'incremental') arms both tables and loads
#     them while writers insert, update, delete and change keys (single- and
#     multi-row statements, rows turning bad and good again);
#   - migrate_sync() passes succeed while they write, and one transaction
#     that began before a sync and commits after it (per source) arrives;
#   - after the writers stop, a final sync: each target equals its source
#     (the rows the rule accepts, md5 of all rows), the change tables are
#     empty, migrate_verify() passes and migrate_diff() finds nothing;
#   - kill -9 and pg_terminate_backend() of the sync worker blocked in the
#     middle of a pass with thousands of pending changes (the gate of
#     MigrateTest.pm), then a sync again: the same result, and each key the
#     rule refused is quarantined once over the killed and the next pass.

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use MigrateTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $rows = 4000;
my $node = start_node('trigger', conf => { restart_after_crash => 'on' });
create_source($node, tables => [ { name => 'items', rows => $rows } ]);
$node->safe_psql('migrate_src', 'CREATE TABLE writers_stop (stop boolean)');

# the local source, its target, and the application role
$node->safe_psql('postgres', qq{
	CREATE SCHEMA app;
	CREATE TABLE app.orders (id int PRIMARY KEY, parent_id int, amount numeric(12,2), note text, day date);
	INSERT INTO app.orders
	SELECT g, NULL, g * 1.25, 'note ' || g, date '2020-01-01' + g % 1000 FROM generate_series(1, $rows) g;
	CREATE TABLE lorders (id int PRIMARY KEY, parent_id int, amount numeric(12,2), note text, day date);
	CREATE ROLE app_writer;
	CREATE TABLE writers_stop (stop boolean);
	GRANT SELECT ON writers_stop TO app_writer;
	GRANT USAGE ON SCHEMA app TO app_writer;
	GRANT SELECT, INSERT, UPDATE, DELETE ON app.orders TO app_writer;
});

# the plan: both tables with capture trigger, their note read through the gate
$node->safe_psql('postgres', q{
	-- the tests count the rejects themselves
	SELECT migrate_plan('p', source_schema => 'legacy', options => '{"reject_limit": null}');
	SELECT migrate_table('p', 'legacy.items', 'items', capture => 'trigger');
	SELECT migrate_table('p', 'app.orders', 'lorders', capture => 'trigger');
	SELECT migrate_column('p', 'items', 'note', 'test_gate(''items'', s.id, s.note)');
	SELECT migrate_column('p', 'lorders', 'note', 'test_gate(''lorders'', s.id, s.note)');
	SELECT migrate_rule('p', 'items', 'items_amount', 'amount >= 0');
	SELECT migrate_rule('p', 'lorders', 'lorders_amount', 'amount >= 0');
});

# the remote source's DBA runs the script
my $ddl = $node->safe_psql('postgres', "SELECT migrate_capture_sql('p')");
like($ddl, qr/CREATE TABLE IF NOT EXISTS public\.items_migrate_changes/,
	'migrate_capture_sql() has the remote change table');
unlike($ddl, qr/app\.orders/, 'and nothing of the local source');
$node->safe_psql('migrate_src', $ddl);

# %src: per target, the database and relation of its source
my %src = (items => [ 'migrate_src', 'items' ], lorders => [ 'postgres', 'app.orders' ]);
my %changes = (items => [ 'migrate_src', 'items_migrate_changes' ],
	lorders => [ 'postgres', 'app.orders_migrate_changes' ]);

# A writer: transactions of random statements on a source table, each
# committed alone, until writers_stop has a row (at most $n); writer $w
# inserts keys of its own range.
sub writer_sql
{
	my ($table, $w, $n, $role) = @_;
	my $base = 100000 * ($w + 1);
	return ($role ? "SET ROLE $role;\n" : '') . qq{
DO \$\$
DECLARE
    r float8;
    k int;
BEGIN
    FOR i IN 1..$n LOOP
        EXIT WHEN EXISTS (SELECT FROM public.writers_stop);
        r := random();
        k := 1 + floor(random() * $rows)::int;
        IF r < 0.25 THEN
            INSERT INTO $table VALUES ($base + i, NULL, CASE WHEN i % 23 = 0 THEN -1 ELSE i * 0.5 END,
                                       'ins ' || i, date '2021-01-01' + i % 100);
        ELSIF r < 0.50 THEN
            UPDATE $table SET amount = CASE WHEN random() < 0.1 THEN -2 ELSE abs(amount) + 1 END,
                              note = 'upd ' || i WHERE id = k;
        ELSIF r < 0.62 THEN
            DELETE FROM $table WHERE id = k;
        ELSIF r < 0.74 THEN
            -- a key change: old and new key
            UPDATE $table SET id = id + 1000000 WHERE id = k;
        ELSIF r < 0.86 THEN
            UPDATE $table SET amount = abs(amount) + 0.01 WHERE id BETWEEN k AND k + 20;
        ELSIF r < 0.93 THEN
            -- keys moving back and forth within one statement
            UPDATE $table SET id = CASE WHEN id < 1000000 THEN id + 2000000 ELSE id - 2000000 END
             WHERE id BETWEEN k AND k + 3 OR id BETWEEN k + 2000000 AND k + 2000003;
        ELSE
            DELETE FROM $table WHERE id BETWEEN $base + i - 50 AND $base + i - 45;
        END IF;
        COMMIT;
        PERFORM pg_sleep(0.001);
    END LOOP;
END
\$\$;
};
}

sub start_writer
{
	my ($db, $sql) = @_;
	my $s = $node->background_psql($db, on_error_stop => 1);
	$s->query_until(qr/writing/, "\\echo writing\n$sql");
	return $s;
}

# the end of a writer: dies on its error
sub finish_writer
{
	my ($s, $name) = @_;
	my $out = $s->query('SELECT 1');
	is($s->{stderr}, '', "$name: the writer ran without error") or diag $s->{stderr};
	$s->quit;
	return;
}

# migrate_sync() in this session; returns (run id, stderr)
sub sync
{
	my ($out, $err) = ('', '');
	$node->psql('postgres', "SET client_min_messages = warning;\n\\set VERBOSITY verbose\n"
		  . "SET migrate.batch_size = 500;\nSELECT migrate_sync('p');",
		stdout => \$out, stderr => \$err, on_error_stop => 0);
	return (($out =~ /^(\d+)$/m) ? $1 : undef, $err);
}

sub run_state
{
	my ($run) = @_;
	return $node->safe_psql('postgres', "SELECT state FROM migrate.run WHERE run_id = $run");
}

# each target equals its source (the rows the rule accepts), nothing pending
sub check_equal
{
	my ($name) = @_;
	for my $t (sort keys %src)
	{
		my ($db, $rel) = @{ $src{$t} };
		is(table_checksum($node, 'postgres', $t), table_checksum($node, $db, $rel, 'amount >= 0'),
			"$name: $t equals its source (the rows the rule accepts)");
		my ($cdb, $crel) = @{ $changes{$t} };
		is($node->safe_psql($cdb, "SELECT count(*) FROM $crel"), '0',
			"$name: the change table of $t is empty");
	}
	return;
}

# the rows the rule refused are fixed at the source; a sync brings them,
# then the targets equal the sources, verify passes and diff finds nothing
sub check_converged
{
	my ($name) = @_;
	for my $t (sort keys %src)
	{
		my ($db, $rel) = @{ $src{$t} };
		$node->safe_psql($db, "UPDATE $rel SET amount = abs(amount) WHERE amount < 0");
	}
	my ($run, $err) = sync();
	ok($run && run_state($run) eq 'succeeded', "$name: the sync after the fixes succeeded") or diag $err;
	check_equal("$name, fixed");
	for my $t (sort keys %src)
	{
		my ($db, $rel) = @{ $src{$t} };
		is($node->safe_psql('postgres', "SELECT count(*) FROM $t"),
			$node->safe_psql($db, "SELECT count(*) FROM $rel"),
			"$name, fixed: every row of $t arrived, the refused ones too");
	}
	my ($out, $verr) = ('', '');
	$node->psql('postgres',
		"SELECT check_name, target, ok, details FROM migrate_verify('p') WHERE NOT ok",
		stdout => \$out, stderr => \$verr, on_error_stop => 0);
	is($verr, '', "$name: migrate_verify() runs");
	is($out, '', "$name: migrate_verify() passes");
	for my $t (sort keys %src)
	{
		($out, $verr) = ('', '');
		$node->psql('postgres', "SELECT key, kind FROM migrate_diff('p', '$t')",
			stdout => \$out, stderr => \$verr, on_error_stop => 0);
		is($verr, '', "$name: migrate_diff() of $t runs");
		is($out, '', "$name: migrate_diff() of $t finds nothing");
	}
	return;
}

# ---- the incremental run and syncs under writers ----
my @writers = (
	[ 'items (remote) writer 1', start_writer('migrate_src', writer_sql('items', 0, 90000)) ],
	[ 'items (remote) writer 2', start_writer('migrate_src', writer_sql('items', 1, 90000)) ],
	[ 'app.orders (local) writer', start_writer('postgres', writer_sql('app.orders', 0, 90000, 'app_writer')) ],
	[ 'app.orders (local) writer 2', start_writer('postgres', writer_sql('app.orders', 1, 90000, 'app_writer')) ]);

my ($run, $err, $out) = (undef, '', '');
$node->psql('postgres', "SET client_min_messages = warning;\n\\set VERBOSITY verbose\n"
	  . "SET migrate.batch_size = 500;\nSELECT migrate_run('p', mode => 'incremental');",
	stdout => \$out, stderr => \$err, on_error_stop => 0);
$run = $1 if $out =~ /^(\d+)$/m;
ok($run, "incremental run $run") or diag $err;
die "no incremental run: $err" unless $run;
is(run_state($run), 'succeeded', 'the incremental run succeeded while the writers wrote');
is($node->safe_psql('postgres', "SELECT mode FROM migrate.run WHERE run_id = $run"), 'incremental',
	'it is an incremental run');
is($node->safe_psql('postgres',
		"SELECT string_agg(target::text || ' ' || capture || ' ' || change_relation, ', ' ORDER BY target::text) "
		  . "FROM migrate.sync_state WHERE plan = 'p'"),
	'items trigger legacy.items_migrate_changes, lorders trigger app.orders_migrate_changes',
	'both tables are armed, reading their change tables');

# the late transactions: begun now, committed after a sync
my %late;
for my $t (sort keys %src)
{
	my ($db, $rel) = @{ $src{$t} };
	my $s = $node->background_psql($db, on_error_stop => 1);
	$s->query_safe("BEGIN");
	$s->query_safe("SET ROLE app_writer") if $t eq 'lorders';
	$s->query_safe("INSERT INTO $rel VALUES (999999, NULL, 7.5, 'late', date '2022-02-02')");
	$s->query_safe("UPDATE $rel SET note = 'late update' WHERE id = 999999");
	$late{$t} = $s;
}
my $passes = 0;
for my $i (1 .. 3)
{
	my ($srun, $serr) = sync();
	ok($srun && run_state($srun) eq 'succeeded', "sync $i under writers succeeded") or diag $serr;
	$passes++ if $srun;
}
for my $t (sort keys %late)
{
	is($node->safe_psql('postgres', "SELECT count(*) FROM $t WHERE id = 999999"), '0',
		"$t: the late transaction is not there before its commit");
	$late{$t}->query_safe('COMMIT');
	$late{$t}->quit;
}
my ($srun, $serr) = sync();
ok($srun && run_state($srun) eq 'succeeded', 'a sync after the late commits succeeded') or diag $serr;
for my $t (sort keys %late)
{
	is($node->safe_psql('postgres', "SELECT note FROM $t WHERE id = 999999"), 'late update',
		"$t: the late transaction arrived");
}
# the writers wrote all along: still writing now, and a good many transactions
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() "
		  . "AND query LIKE '%writers_stop%'"),
	'4', 'the four writers were still writing after the syncs');
$node->safe_psql($_, 'INSERT INTO writers_stop VALUES (true)') for qw(migrate_src postgres);
finish_writer($_->[1], $_->[0]) for @writers;

($srun, $serr) = sync();
ok($srun && run_state($srun) eq 'succeeded', 'the final sync succeeded') or diag $serr;
check_equal('after the writers');
check_converged('after the writers');

# the application role wrote without any right on the change table
is($node->safe_psql('postgres',
		"SELECT has_table_privilege('app_writer', 'app.orders_migrate_changes', 'SELECT, INSERT, DELETE')"),
	'f', 'the application role has no right on the local change table');

# ---- kills in the middle of a pass with thousands of pending changes ----
# $how: kill9 or term; $t: the table whose gate stops the worker
for my $pt ([ 'kill9', 'items' ], [ 'term', 'lorders' ], [ 'term', 'items' ], [ 'kill9', 'lorders' ])
{
	my ($how, $t) = @$pt;
	my $name = "$how of the sync worker in $t";
	note "=== $name";
	my ($db, $rel) = @{ $src{$t} };
	# every row changed, one in 9 turning bad, a few keys changed and deleted
	$node->safe_psql($db, qq{
		UPDATE $rel SET amount = CASE WHEN id % 9 = 0 THEN -3 ELSE abs(amount) + 1 END;
		UPDATE $rel SET id = id + 3000000 WHERE id % 97 = 1;
		DELETE FROM $rel WHERE id % 101 = 2;
	});
	my $pending = $node->safe_psql($changes{$t}[0], "SELECT count(*) FROM $changes{$t}[1]");
	cmp_ok($pending, '>', 2000, "$name: $pending changes pending");
	# the gate: a key of the middle of the table
	my $gkey = $node->safe_psql($db, "SELECT id FROM $rel ORDER BY id OFFSET (SELECT count(*) / 2 FROM $rel) LIMIT 1");
	set_gate($node, $t => [$gkey]);
	my $gate = gate_close($node);
	my $caller = $node->background_psql('postgres', on_error_stop => 0);
	$caller->query_until(qr/starting sync/,
		"\\echo starting sync\nSET client_min_messages = warning;\nSET migrate.batch_size = 500;\n"
		  . "SELECT migrate_sync('p');\n");
	my $pid = worker_pid($node, 'p');
	my $krun = $node->safe_psql('postgres',
		"SELECT run_id FROM migrate.run WHERE plan = 'p' AND state = 'running'");
	is(gate_wait($node), $pid, "$name: the sync worker ($pid) is at the gate");
	if ($how eq 'term')
	{
		$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
		finish_run($caller);
		gate_open($gate);
	}
	else
	{
		kill 'KILL', $pid or die "kill $pid: $!";
		$node->poll_query_until('postgres', 'SELECT true') or die 'the server did not come back';
		finish_run($caller);
		gate_open($gate);
	}
	$node->restart;
	set_gate($node);
	my $left = $node->safe_psql($changes{$t}[0], "SELECT count(*) FROM $changes{$t}[1]");
	cmp_ok($left, '>', 0, "$name: changes are left after the kill ($left of $pending)");

	my ($rrun, $rerr) = sync();
	ok($rrun && run_state($rrun) eq 'succeeded', "$name: the next sync succeeded") or diag $rerr;
	$rrun ||= 0;
	check_equal($name);
	# each row the rule refused is quarantined, once: not again by the
	# pass after the kill (nor for a row already quarantined as it is)
	my $bad = $node->safe_psql($db, "SELECT count(*) FROM $rel WHERE amount < 0");
	cmp_ok($bad, '>', 100, "$name: $bad rows of $t are refused by the rule");
	my $srel = $t eq 'items' ? 'legacy.items' : 'app.orders';
	is($node->safe_psql('postgres',
			"SELECT count(*) FROM $srel s WHERE s.amount < 0 AND NOT EXISTS (SELECT FROM migrate.reject r "
			  . "WHERE r.target = '$t'::regclass AND r.source_key = s.id::text)"),
		'0', "$name: each of them is in migrate.reject");
	is($node->safe_psql('postgres',
			"SELECT count(*) FROM (SELECT source_key, source_row FROM migrate.reject "
			  . "WHERE target = '$t'::regclass GROUP BY 1, 2 HAVING count(*) > 1) d"),
		'0', "$name: no row of $t is quarantined twice");
	is($node->safe_psql('postgres',
			"SELECT count(*) = count(DISTINCT source_key) FROM migrate.reject "
			  . "WHERE run_id IN ($krun, $rrun) AND target = '$t'::regclass"),
		't', "$name: the killed pass and the next one quarantine distinct keys");
	check_converged($name);
}

done_testing();
