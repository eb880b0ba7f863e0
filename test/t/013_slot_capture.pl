# 013_slot_capture.pl: capture => 'slot' (src/slot.c) against a real
# logical replication slot on a postgres_fdw loopback source.
#
# One cluster with wal_level = logical; the source database migrate_src,
# the target postgres with foreign tables in schema legacy (MigrateTest.pm).
# The C API of slot.h is called through a test-only SQL declaration of
# migrate_slot_test (declared here, in no script), and through
# migrate._slot_pending_keys() / migrate._slot_drop().  Checked:
#
#   - the slot's name: "migrate_" and 16 hex digits of md5(plan);
#   - create (idempotent), exists, the current LSN;
#   - the keys of inserts, updates, key changes (old and new key), deletes
#     and truncates, of the table only, in commit order, grouped by
#     transaction: max_changes stops after whole transactions and the LSN
#     returned is that of the last COMMIT read (compared with the slot's own
#     rows); a transaction that began before another and committed after it
#     comes after it, and counts when its COMMIT is past the position even
#     though its change rows are older than that position;
#   - upto: transactions committed after the fence wait for the next read;
#   - advance: nothing already confirmed comes back; never backwards; a
#     read after a position the slot is behind skips the re-delivered
#     transactions, also when they alone exceed the row limit;
#   - quoted names and values (schema, table and key column names with
#     spaces and quotes, remote names from the foreign table's options);
#   - a big transaction streamed with a small work_mem;
#   - errors: no replica identity over the key (55000), wal_level not
#     logical (55000), a role without REPLICATION (42501), a lost slot
#     (55000, hint: a diff pass then arm again), each with its hint;
#   - migrate._slot_pending_keys() as its user (and refused to PUBLIC),
#     migrate._slot_drop();
#   - end to end (src/sync.c): migrate_table(..., capture => 'slot'),
#     migrate_run(mode => 'incremental') while a writer inserts, updates,
#     deletes and changes keys (sometimes several changes a transaction),
#     migrate_sync() passes during the writes, a late-committing
#     transaction, final passes: the target equals the source (count and
#     md5 of the rows), nothing pending, the slot confirmed at the table's
#     position; then thousands of pending changes, a pass in batches of
#     100 stopped mid-way at the gate and its worker terminated
#     (pg_terminate_backend): the next pass gives the source again.

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use MigrateTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('slot', conf => { wal_level => 'logical', max_replication_slots => 10 });
create_source($node, tables => [ { name => 'orders', rows => 100 } ]);
create_plan($node, 'p', tables => ['orders']);

$node->safe_psql('migrate_src', q{
	CREATE SCHEMA "My ""Schema""";
	CREATE TABLE "My ""Schema"""."Odd Name" ("Key Col" text PRIMARY KEY, "v:[x]" text);
	CREATE TABLE nopk (id int, v text);
	CREATE TABLE other (id int PRIMARY KEY);
	CREATE ROLE norepl LOGIN;
});
$node->safe_psql('postgres', q{
	CREATE FUNCTION slot_test(op text, ft regclass, slot text, arg text) RETURNS text
	    LANGUAGE C AS '$libdir/migrate', 'migrate_slot_test';
	CREATE FOREIGN TABLE legacy.odd (k text OPTIONS (column_name 'Key Col'), v text OPTIONS (column_name 'v:[x]'))
	    SERVER src OPTIONS (schema_name 'My "Schema"', table_name 'Odd Name');
	CREATE FOREIGN TABLE legacy.nopk (id int, v text) SERVER src OPTIONS (schema_name 'public');
	CREATE SERVER src_norepl FOREIGN DATA WRAPPER postgres_fdw
	    OPTIONS (host '} . $node->host . q{', port '} . $node->port . q{', dbname 'migrate_src');
	CREATE USER MAPPING FOR CURRENT_USER SERVER src_norepl OPTIONS (user 'norepl');
	CREATE FOREIGN TABLE legacy.orders_norepl (id int) SERVER src_norepl
	    OPTIONS (schema_name 'public', table_name 'orders');
});

sub t
{
	my ($op, $ft, $slot, $arg) = @_;
	my $q = sub { defined $_[0] ? "'" . ($_[0] =~ s/'/''/gr) . "'" : 'NULL' };
	return $node->safe_psql('postgres',
		"SELECT slot_test('$op', " . $q->($ft) . ", " . $q->($slot) . ", " . $q->($arg) . ")");
}

# a call that must fail: its stderr (VERBOSITY verbose: the SQLSTATE, the hint)
sub t_err
{
	my ($op, $ft, $slot, $arg) = @_;
	my ($out, $err) = ('', '');
	my $q = sub { defined $_[0] ? "'" . ($_[0] =~ s/'/''/gr) . "'" : 'NULL' };
	$node->psql('postgres',
		"\\set VERBOSITY verbose\nSELECT slot_test('$op', " . $q->($ft) . ", " . $q->($slot) . ", " . $q->($arg) . ")",
		stdout => \$out, stderr => \$err);
	return $err;
}

# read(ft, key, after, upto, max) -> (keys, last, changes)
sub rd
{
	my ($ft, $key, $after, $upto, $max) = @_;
	my $r = t('read', $ft, slot_name(), join('|', $key, $after // '', $upto // '', $max // ''));
	my @f = split /\|/, $r, -1;
	return @f;
}

# the commit LSNs of the slot's transactions, as the slot itself shows them
sub commits
{
	my ($slot) = @_;
	return split /\n/, $node->safe_psql('migrate_src',
		"SELECT lsn FROM pg_logical_slot_peek_changes('$slot', NULL, NULL, 'include-xids', '1', "
		  . "'skip-empty-xacts', '1') WHERE data LIKE 'COMMIT %'");
}

# --- the name
my $slot = t('name', undef, undef, 'p');
like($slot, qr/^migrate_[0-9a-f]{16}$/, "the slot's name is migrate_ and 16 hex digits: $slot");
is($slot, $node->safe_psql('postgres', "SELECT 'migrate_' || left(md5('p'), 16)"), 'from md5 of the plan name');
is(t('name', undef, undef, 'p'), $slot, 'the same name each time');
sub slot_name { return $slot }

# --- create
is(t('exists', 'legacy.orders', $slot), 'f', 'no slot yet');
my $start = t('create', 'legacy.orders', $slot);
like($start, qr{^[0-9A-F]+/[0-9A-F]+$}, "create returns the LSN it decodes from: $start");
is($node->safe_psql('migrate_src',
		"SELECT plugin || ' ' || database || ' ' || confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '$slot'"),
	"test_decoding migrate_src $start", 'a test_decoding slot in the source database, confirmed at that LSN');
is(t('create', 'legacy.orders', $slot), $start, 'create again: the existing slot, same LSN');
is(t('exists', 'legacy.orders', $slot), 't', 'the slot exists');
like(t('lsn', 'legacy.orders'), qr{^[0-9A-F]+/[0-9A-F]+$}, 'the current LSN of the source');

my @none = rd('legacy.orders', 'id');
is_deeply(\@none, [ '', '', '0' ], 'nothing to read yet: no keys, no LSN');

# --- writes
$node->safe_psql('migrate_src', q{INSERT INTO orders (id, amount) VALUES (1001, 1), (1002, 2)});   # x1
$node->safe_psql('migrate_src', q{UPDATE orders SET amount = 5 WHERE id = 1001});                   # x2
$node->safe_psql('migrate_src', q{UPDATE orders SET id = 2001 WHERE id = 1002});                    # x3 key change
$node->safe_psql('migrate_src', q{DELETE FROM orders WHERE id = 5});                                # x4
$node->safe_psql('migrate_src', q{INSERT INTO other VALUES (1)});                                   # x5 other table only
# x6 begins first and writes first, x7 commits before it
my $a = $node->background_psql('migrate_src');
$a->query_safe(q{BEGIN; INSERT INTO orders (id) VALUES (3001)});
$node->safe_psql('migrate_src', q{INSERT INTO orders (id) VALUES (3002)});                          # x7
$a->query_safe(q{UPDATE orders SET note = 'late' WHERE id = 7; COMMIT});                            # x6
$a->quit;
$node->safe_psql('migrate_src', q{BEGIN; INSERT INTO other VALUES (2); DELETE FROM orders WHERE id IN (8, 9); COMMIT});   # x8
$node->safe_psql('migrate_src', q{TRUNCATE orders});                                                # x9

my @c = commits($slot);
is(scalar @c, 9, 'the slot holds 9 transactions');

my ($keys, $last, $n) = rd('legacy.orders', 'id');
is($keys, '1001,1002,1001,2001,1002,5,3002,3001,7,8,9,<T>',
	'all keys of the table, in commit order: insert, update, key change (new, old), delete, '
	  . 'the late transaction after the one that committed first, delete, truncate');
is($last, $c[8], 'the LSN returned is the last COMMIT');
is($n, 12, 'changes counts the keys given');

# whole transactions, one at a time (max 1): each with its own commit LSN
my @want = ('1001,1002', '1001', '2001,1002', '5', '', '3002', '3001,7', '8,9', '<T>');
my $pos;
for my $i (0 .. 8)
{
	my ($k, $l) = rd('legacy.orders', 'id', $pos, undef, 1);
	is($k, $want[$i], "transaction " . ($i + 1) . " alone: keys '$want[$i]'");
	is($l, $c[$i], "transaction " . ($i + 1) . ": its commit LSN");
	$pos = $l;
}
my @after_all = rd('legacy.orders', 'id', $pos);
is_deeply(\@after_all, [ '', '', '0' ], 'after the last commit: nothing');

# the late transaction: its change rows are older than the commit of x7,
# it still counts after x7's position
my $x3001 = $node->safe_psql('migrate_src',
	"SELECT min(lsn) FROM pg_logical_slot_peek_changes('$slot', NULL, NULL) WHERE data LIKE '%id[integer]:3001%'");
is($node->safe_psql('migrate_src', "SELECT '$x3001'::pg_lsn < '$c[6]'::pg_lsn"), 't',
	"the late transaction's change row ($x3001) is older than the commit of the one before it ($c[6])");
($keys) = rd('legacy.orders', 'id', $c[5]);
like($keys, qr/^3001,7,/, 'and it is read after that position');

# upto: a fence
($keys, $last) = rd('legacy.orders', 'id', undef, $c[2]);
is($keys, '1001,1002,1001,2001,1002', 'upto the third commit: three transactions');
is($last, $c[2], 'ending at the fence');
($keys, $last) = rd('legacy.orders', 'id', $c[2], $c[3]);
is("$keys $last", "5 $c[3]", 'the next pass up to the next fence');

# --- advance
t('advance', 'legacy.orders', $slot, $c[2]);
is($node->safe_psql('migrate_src', "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '$slot'"),
	$c[2], 'advanced to the third commit');
($keys) = rd('legacy.orders', 'id');
is($keys, '5,3002,3001,7,8,9,<T>', 'what was confirmed is not re-delivered');
t('advance', 'legacy.orders', $slot, $c[0]);
is($node->safe_psql('migrate_src', "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '$slot'"),
	$c[2], 'advancing backwards does nothing (no error)');
# the slot is behind this table's position (another table is behind):
# the re-delivered transactions alone use up the limit, and are skipped
($keys, $last) = rd('legacy.orders', 'id', $c[6], undef, 3);
is("$keys $last", "8,9 $c[7]", 'a position past the slot: re-delivered transactions skipped, then whole ones to the limit');

# --- quoted names: remote names from the options, values with quotes
$node->safe_psql('migrate_src', q{
	INSERT INTO "My ""Schema"""."Odd Name" VALUES ('it''s a "key"', 'x'), ('plain', 'a b'' c');
	UPDATE "My ""Schema"""."Odd Name" SET "Key Col" = 'new '' key' WHERE "Key Col" = 'plain';
	DELETE FROM "My ""Schema"""."Odd Name" WHERE "Key Col" = 'it''s a "key"';
});
($keys) = rd('legacy.odd', 'k', $c[8]);
is($keys, q{it's a "key",plain,new ' key,plain,it's a "key"},
	'quoted schema, table and column names; quoted values unescaped');
($keys) = rd('legacy.orders', 'id', $c[8]);
is($keys, '', 'the other table\'s changes are not the orders\'');

# --- a big transaction, streamed with a small work_mem
$node->safe_psql('migrate_src', q{INSERT INTO orders (id) SELECT g FROM generate_series(1, 30000) g});
my @c2 = commits($slot);
my $r = $node->safe_psql('postgres',
	"SET work_mem = '64kB'; SELECT length(slot_test('read', 'legacy.orders', '$slot', 'id|$c2[-2]||'))");
ok($r > 30000 * 2, "30000 keys of one transaction read with work_mem 64kB ($r bytes)");
(undef, $last, $n) = rd('legacy.orders', 'id', $c2[-2]);
is("$n $last", "30000 $c2[-1]", '30000 keys, the last commit');

# --- migrate._slot_pending_keys: the table's position in sync_state
$node->safe_psql('postgres',
	"INSERT INTO migrate.sync_state (plan, target, capture, position, slot_name) VALUES ('p', 'orders', 'slot', '$c2[-2]', '$slot')");
is($node->safe_psql('postgres', "SELECT count(*), min(k::int), max(k::int) FROM migrate._slot_pending_keys('p', 'orders') k"),
	'30000|1|30000', '_slot_pending_keys: the keys after the position in sync_state');
$node->safe_psql('postgres', "UPDATE migrate.sync_state SET position = '$c2[-1]'");
is($node->safe_psql('postgres', "SELECT count(*) FROM migrate._slot_pending_keys('p', 'orders')"), '0',
	'_slot_pending_keys after the last commit: none');
$node->safe_psql('postgres', "UPDATE migrate.sync_state SET position = '$c[5]'");
is($node->safe_psql('postgres', "SELECT string_agg(coalesce(k, '<T>'), ',' ORDER BY o) "
		  . "FROM migrate._slot_pending_keys('p', 'orders') WITH ORDINALITY AS x(k, o) WHERE o <= 5"),
	'3001,7,8,9,<T>', '_slot_pending_keys: a truncate is a NULL');
my ($out, $err) = ('', '');
$node->safe_psql('postgres', 'CREATE ROLE regress_slot_user');
$node->psql('postgres', "SET ROLE regress_slot_user; SELECT migrate._slot_pending_keys('p', 'orders')",
	stdout => \$out, stderr => \$err);
like($err, qr/permission denied for function _slot_pending_keys/, '_slot_pending_keys is not PUBLIC\'s');

# --- errors
$err = t_err('read', 'legacy.nopk', $slot, 'id|||');
like($err, qr/ERROR:  55000: the replica identity of source table public.nopk on server "src" does not hold key column id/,
	'no replica identity over the key: 55000');
like($err, qr/HINT:  .*primary key.*REPLICA IDENTITY/, 'with a hint to set REPLICA IDENTITY or a primary key');
$node->safe_psql('migrate_src', 'ALTER TABLE nopk REPLICA IDENTITY FULL');
($keys) = rd('legacy.nopk', 'id', $c2[-1]);
is($keys, '', 'REPLICA IDENTITY FULL: readable');
$node->safe_psql('migrate_src', q{INSERT INTO nopk VALUES (1, 'a'); UPDATE nopk SET v = 'b'; UPDATE nopk SET id = 2; DELETE FROM nopk});
($keys) = rd('legacy.nopk', 'id', $c2[-1]);
is($keys, '1,1,2,1,2', 'identity full: insert, update (the old key is the same: once), key change (new, old), delete');
$node->safe_psql('migrate_src', 'CREATE VIEW v AS SELECT id FROM orders');
$node->safe_psql('postgres', "CREATE FOREIGN TABLE legacy.v (id int) SERVER src OPTIONS (schema_name 'public', table_name 'v')");
$err = t_err('read', 'legacy.v', $slot, 'id|||');
like($err, qr/ERROR:  0A000: source public.v of foreign table v on server "src" is not a table/, 'a view: 0A000');

$err = t_err('read', 'legacy.orders_norepl', $slot, 'id|||');
like($err, qr/ERROR:  42501: permission denied to use replication slot "$slot" on server "src_norepl"/,
	'a source role without REPLICATION: 42501');
like($err, qr/HINT:  .*REPLICATION attribute/, 'with a hint about the REPLICATION attribute');
$err = t_err('create', 'legacy.orders_norepl', 'migrate_other');
like($err, qr/ERROR:  42501: permission denied/, 'and create too');

# lost: dropped behind our back
$node->safe_psql('migrate_src', "SELECT pg_drop_replication_slot('$slot')");
$err = t_err('read', 'legacy.orders', $slot, 'id|||');
like($err, qr/ERROR:  55000: replication slot "$slot" on server "src" is lost/, 'a lost slot: 55000');
like($err, qr/HINT:  The slot was dropped or invalidated: run one pass with capture => 'diff' \(migrate_table\(\.\.\., capture => 'diff'\) and migrate_sync\(\)\), then capture => 'slot' and migrate_run\(plan, mode => 'incremental'\) to arm it again/,
	'with the hint: a diff pass, then arm again');
$err = t_err('advance', 'legacy.orders', $slot, $c2[-1]);
like($err, qr/ERROR:  55000: replication slot "$slot" on server "src" is lost/, 'advance of a lost slot: 55000');
$node->psql('postgres', "\\set VERBOSITY verbose\nSELECT migrate._slot_pending_keys('p', 'orders')",
	stdout => \$out, stderr => \$err);
like($err, qr/ERROR:  55000: replication slot "$slot" on server "src" is lost/, '_slot_pending_keys of a lost slot: 55000');

# lost: invalidated by the source (max_slot_wal_keep_size)
t('create', 'legacy.orders', 'migrate_inval');
$node->safe_psql('postgres', "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'");
$node->reload;
for (1 .. 3)
{
	$node->safe_psql('migrate_src', 'INSERT INTO other SELECT max(id) + 1 FROM other');
	$node->safe_psql('migrate_src', 'SELECT pg_switch_wal()');
}
$node->safe_psql('migrate_src', 'CHECKPOINT');
is($node->safe_psql('migrate_src', "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'migrate_inval'"),
	'lost', 'the source invalidated a slot that kept too much WAL');
$err = t_err('read', 'legacy.orders', 'migrate_inval', 'id|||');
like($err, qr/ERROR:  55000: replication slot "migrate_inval" on server "src" is lost/, 'an invalidated slot: 55000');
like($err, qr/DETAIL:  The source removed WAL the slot still needed/, 'with why');
like($err, qr/HINT:  The slot was dropped or invalidated: run one pass with capture => 'diff'/, 'and the hint');
t('drop', 'legacy.orders', 'migrate_inval');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET max_slot_wal_keep_size');
$node->reload;

# --- _slot_drop
t('create', 'legacy.orders', $slot);
is($node->safe_psql('migrate_src', "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot'"), '1', 'armed again');
$node->safe_psql('postgres', "SELECT migrate._slot_drop('p')");
is($node->safe_psql('migrate_src', "SELECT count(*) FROM pg_replication_slots"), '0', '_slot_drop drops the plan\'s slot');
$node->safe_psql('postgres', "SELECT migrate._slot_drop('p')");
pass('_slot_drop again: no error');
t('drop', 'legacy.orders', $slot);
pass('drop of a missing slot: no error');

# === end to end: migrate_run(mode => 'incremental') and migrate_sync() with
# concurrent writers (inserts, updates, deletes, key changes, several
# changes per transaction, a late commit), then a kill mid-pass
$node->safe_psql('migrate_src', q{
	CREATE TABLE acct (id int PRIMARY KEY, parent_id int, amount numeric(12,2), note text, day date);
	INSERT INTO acct SELECT g, NULL, g * 1.25, 'note ' || g, date '2020-01-01' + g % 1000
	  FROM generate_series(1, 20000) g;
	CREATE PROCEDURE writer(p_from int, p_n int, p_sleep float8) LANGUAGE plpgsql AS $$
	BEGIN
	    FOR i IN p_from .. p_from + p_n - 1 LOOP
	        CASE i % 4
	            WHEN 0 THEN INSERT INTO acct VALUES (100000 + i, NULL, i, 'w ' || i, date '2021-01-01');
	            WHEN 1 THEN UPDATE acct SET amount = amount + 1, note = note || '+'
	                         WHERE id = (i::bigint * 7919) % 20000 + 1;
	            WHEN 2 THEN DELETE FROM acct WHERE id = (i::bigint * 104729) % 20000 + 1;
	            ELSE UPDATE acct SET id = 2000000 + i WHERE id = (i::bigint * 15485863) % 20000 + 1;
	        END CASE;
	        -- mostly one change per transaction, sometimes several
	        IF i % 10 <> 0 THEN
	            COMMIT;
	        END IF;
	        PERFORM pg_sleep(p_sleep);
	    END LOOP;
	    COMMIT;
	END $$;
	CREATE PROCEDURE bulk_update(p_chunks int, p_size int) LANGUAGE plpgsql AS $$
	BEGIN
	    FOR j IN 0 .. p_chunks - 1 LOOP
	        UPDATE acct SET amount = amount + 1 WHERE id > j * p_size AND id <= (j + 1) * p_size;
	        COMMIT;
	    END LOOP;
	END $$;
});
$node->safe_psql('postgres', q{
	CREATE TABLE acct (id int PRIMARY KEY, parent_id int, amount numeric(12,2), note text, day date);
	IMPORT FOREIGN SCHEMA public LIMIT TO (acct) FROM SERVER src INTO legacy;
	SELECT migrate_plan('e2e', source_schema => 'legacy');
	SELECT migrate_table('e2e', 'acct', 'acct', capture => 'slot');
});
my $e2e_slot = t('name', undef, undef, 'e2e');

# sync SQL: errors with their SQLSTATE
sub sync_sql
{
	my ($what, $bs) = @_;
	$bs ||= 500;
	return "\\set VERBOSITY verbose\nSET client_min_messages = warning;\nSET migrate.batch_size = $bs;\n$what\n";
}
sub run_sql
{
	my ($what, $bs) = @_;
	my ($o, $e) = ('', '');
	$node->psql('postgres', sync_sql($what, $bs), stdout => \$o, stderr => \$e, timeout => 180);
	return ($o, $e);
}

my $writer = $node->background_psql('migrate_src', on_error_stop => 1);
$writer->query_until(qr/writing/, "\\echo writing\nCALL writer(1, 3000, 0.002);\n");
# wait => false: on a loopback source the slot's creation (in the worker)
# waits for every transaction of the cluster that holds a transaction id,
# and migrate_run()'s own checks give the caller's transaction one: a
# caller waiting for the worker would wait for ever
my ($o, $e) = run_sql("SELECT migrate_run('e2e', mode => 'incremental', wait => false);");
like($o, qr/^\d+$/m, 'the incremental run starts while writers write') or diag $e;
my ($inc) = $o =~ /^(\d+)$/m;
is(wait_run_end($node, $inc), 'succeeded', 'the incremental run succeeded');
is($node->safe_psql('postgres', "SELECT capture || ' ' || slot_name FROM migrate.sync_state WHERE plan = 'e2e'"),
	"slot $e2e_slot", 'armed: sync_state names the plan\'s slot');
is($node->safe_psql('migrate_src', "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$e2e_slot'"),
	'1', 'the slot exists on the source');

# a late transaction: its first change comes before passes that commit
# after it began, its commit after them
my $late = $node->background_psql('migrate_src', on_error_stop => 1);
$late->query_safe(q{BEGIN; INSERT INTO acct VALUES (999999, NULL, 1, 'late', date '2022-01-01')});
for my $i (1 .. 3)
{
	($o, $e) = run_sql("SELECT migrate_sync('e2e');");
	like($o, qr/^\d+$/m, "sync pass $i during the writes") or diag $e;
	sleep 1;
}
$late->query_safe(q{UPDATE acct SET note = 'late, still' WHERE id = 999999; COMMIT});
$late->quit;
$writer->query_safe('SELECT 1');    # the CALL has returned
$writer->quit;
for my $i (1 .. 2)
{
	($o, $e) = run_sql("SELECT migrate_sync('e2e');");
	like($o, qr/^\d+$/m, "final sync pass $i") or diag $e;
}
is(table_checksum($node, 'postgres', 'acct'), source_checksum($node, 'acct'),
	'after the final sync the target equals the source (count and md5 of the rows)');
is($node->safe_psql('postgres', "SELECT note FROM acct WHERE id = 999999"), 'late, still',
	'the late transaction arrived');
my $st = $node->safe_psql('postgres',
	"SELECT passes, applied_inserted > 0, applied_updated > 0, applied_deleted > 0, position IS NOT NULL "
	  . "FROM migrate.sync_state WHERE plan = 'e2e'");
is($st, '5|t|t|t|t', 'sync_state: 5 passes, inserts, updates and deletes applied, a position');
is($node->safe_psql('postgres', "SELECT count(*) FROM migrate._slot_pending_keys('e2e', 'acct')"), '0',
	'nothing pending after the position');
my $e2e_pos = $node->safe_psql('postgres', "SELECT position FROM migrate.sync_state WHERE plan = 'e2e'");
is($node->safe_psql('migrate_src', "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '$e2e_slot'"),
	$e2e_pos, 'the slot is confirmed up to the table\'s position');

# thousands of pending changes (30 transactions of 100 updates), a pass in
# batches of 100 stopped at the gate in the middle and its worker
# terminated; the next pass gives the same result
$node->safe_psql('migrate_src', 'CALL bulk_update(30, 100)');
my $bulk = $node->safe_psql('migrate_src', 'SELECT count(*) FROM acct WHERE id <= 3000');
ok($bulk > 2000, "$bulk rows updated (the writers deleted or moved some of ids 1-3000)");
is($node->safe_psql('postgres', "SELECT count(*) FROM migrate._slot_pending_keys('e2e', 'acct')"), $bulk,
	'as many pending keys');
$node->safe_psql('postgres', q{SELECT migrate_column('e2e', 'acct', 'note', 'test_gate(''acct'', s.id, s.note)')});
set_gate($node, acct => [2550]);
my $gate = gate_close($node);
my $syncer = $node->background_psql('postgres', on_error_stop => 0);
$syncer->query_until(qr/syncing/, "\\echo syncing\n" . sync_sql("SELECT migrate_sync('e2e');", 100));
my $pid = gate_wait($node);
is($pid, worker_pid($node, 'e2e'), 'the sync\'s worker waits at the gate, mid-pass');
my $mid = $node->safe_psql('postgres', "SELECT position FROM migrate.sync_state WHERE plan = 'e2e'");
isnt($mid, $e2e_pos, "batches before the gate committed their position ($mid)");
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
finish_run($syncer);
gate_open($gate);
set_gate($node);
$node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid")
  or die "the worker $pid did not end";
ok($node->safe_psql('postgres', "SELECT count(*) FROM migrate._slot_pending_keys('e2e', 'acct')") > 0,
	'changes are left after the kill');
($o, $e) = run_sql("SELECT migrate_sync('e2e');", 100);
like($o, qr/^\d+$/m, 'the next sync runs') or diag $e;
is(table_checksum($node, 'postgres', 'acct'), source_checksum($node, 'acct'),
	'after the kill and a sync the target equals the source');
is($node->safe_psql('postgres', "SELECT count(*) FROM migrate._slot_pending_keys('e2e', 'acct')"), '0',
	'nothing pending');
$node->safe_psql('postgres', "SELECT migrate._slot_drop('e2e')");
is($node->safe_psql('migrate_src', "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$e2e_slot'"),
	'0', 'migrate._slot_drop() drops the plan\'s slot');

# --- wal_level: a cluster without logical decoding
my $plain = start_node('plain', conf => { wal_level => 'replica' });
$plain->safe_psql('postgres', 'CREATE DATABASE migrate_src');
$plain->safe_psql('migrate_src', 'CREATE TABLE orders (id int PRIMARY KEY)');
$plain->safe_psql('postgres', q{
	CREATE EXTENSION postgres_fdw;
	CREATE EXTENSION migrate;
	CREATE SERVER src FOREIGN DATA WRAPPER postgres_fdw
	    OPTIONS (host '} . $plain->host . q{', port '} . $plain->port . q{', dbname 'migrate_src');
	CREATE USER MAPPING FOR CURRENT_USER SERVER src;
	CREATE FOREIGN TABLE orders (id int) SERVER src;
	CREATE FUNCTION slot_test(op text, ft regclass, slot text, arg text) RETURNS text
	    LANGUAGE C AS '$libdir/migrate', 'migrate_slot_test';
});
$plain->psql('postgres', "\\set VERBOSITY verbose\nSELECT slot_test('create', 'orders', 'migrate_x', NULL)",
	stdout => \$out, stderr => \$err);
like($err, qr/ERROR:  55000: cannot create replication slot "migrate_x" on server "src": its wal_level is "replica"/,
	'wal_level replica: 55000');
like($err, qr/HINT:  Set wal_level = logical on the source and restart it\./, 'with the hint to set wal_level');
$plain->stop;

$node->stop;
done_testing();
