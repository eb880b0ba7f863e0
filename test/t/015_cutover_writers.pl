# 015_cutover_writers.pl: blue-green cutover (migrate_cutover) while real
# writers write, its refusals, and the rollback of the cutover.
#
# The fixture (CutoverTest.pm): a local blue-green migration, live schema
# app (v1) -> shadow app_next (v2, one mapped column more per table), plan
# "bg" with capture => 'trigger', an application role app_rw with grants, a
# view and an inbound foreign key in schema reporting, and ledgers that the
# writer fills in the same transaction as its writes.  Checked:
#
#   - refusals, each with its errcode, nothing renamed, no lock left (no
#     backend holds a lock on app or app_next, the refused session holds
#     none at all): (a) a shadow row changed behind migrate's back: 55000
#     naming the table; (b) an open transaction of the application holding
#     ROW EXCLUSIVE on a live table: 55P03 after max_attempts, and that
#     transaction then commits unharmed;
#   - migrate_cutover while pgbench (as app_rw, 4 clients, -R 200) inserts
#     orders, events and customers and updates orders, recording every id in
#     the ledgers in the same transaction, and keeps writing after the swap:
#     it returns a run id; no pgbench transaction failed; every ledger id is
#     in the new app tables (the former app_next), exactly once (counts are
#     the seed plus the ledgers), each order's version equals its number of
#     committed updates; rows from before the swap carry their mapped
#     column; the writer wrote both before and after the swap, and the ids
#     it got after the swap are beyond every id before (sequences); the
#     view reads the new tables, the inbound foreign key points at them (a
#     new parent id is accepted, a bad one fails 23503, VALIDATE passes), the
#     application role reads and writes the new tables; migrate.cutover has
#     the run's row (attempts, lock_held);
#   - migrate_rollback of the cutover's run: app is v1 again (the old tables
#     by oid), app_next v2, the view and the foreign key point at the old
#     tables, the grants the swap added are gone, the old sequences are
#     beyond what the new tables issued; a second rollback is a no-op;
#   - (c) a remote source (postgres_fdw loopback, capture trigger installed
#     by the "DBA" from migrate_capture_sql) written to during the cutover's
#     final sync, at a moment the test chooses (see below): the source moved
#     past the fence, the cutover is refused (55000), nothing renamed, no
#     lock left; then, the source quiet, it succeeds with both changes.

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use CutoverTest;
use MigrateTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

my $node = start_node('cutover', conf => { max_connections => 60 });
my $tmp = $PostgreSQL::Test::Utils::tmp_check;

# the remote source of (c): migrate_src.stock behind legacy.stock
create_source($node, tables => [ { name => 'stock', rows => 2000 } ]);
my $v1 = setup_bluegreen($node);
my $v2 = live_oids($node, 'app_next');

# errcode the cutover raises when a remote source moved past its fence
# (documented by the cutover helper in docs/reference.md)
my $FENCE_ERRCODE = '55000';

my $have_cutover = $node->safe_psql('postgres',
	"SELECT count(*) FROM pg_proc WHERE proname = 'migrate_cutover'") ne '0';
my $have_rollback_cutover = 1;

# ---- the incremental run arms capture and loads app_next ----
my ($ret, $out, $err) = psql_err($node, "SELECT migrate_run('bg', mode => 'incremental');");
is($ret, 0, 'the incremental run of bg succeeds') or diag $err;
is($node->safe_psql('postgres',
		"SELECT string_agg(target::text || ' ' || capture, ', ' ORDER BY target::text) FROM migrate.sync_state WHERE plan = 'bg'"),
	'app_next.customers trigger, app_next.events trigger, app_next.orders trigger',
	'the three tables are armed with trigger capture');
for my $t (qw(customers orders events))
{
	is(target_md5($node, 'app_next', $t), mapped_md5($node, 'app', $t),
		"after the load, app_next.$t is app.$t as the plan maps it");
}

SKIP:
{
	skip 'TODO: migrate_cutover() is not delivered yet (h14-cutover)', 1 unless $have_cutover;

# a session for the refused cutovers; its locks are checked after each
my $cs = $node->background_psql('postgres', on_error_stop => 0);
$cs->query_safe("\\set VERBOSITY verbose");
$cs->query_safe("SET client_min_messages = warning");
my $cs_pid = $cs->query_safe('SELECT pg_backend_pid()');
chomp $cs_pid;

# run sql in the refusal session: (stdout, stderr)
sub in_cs
{
	my ($sql) = @_;
	$cs->{stderr} = '';
	my $o = $cs->query($sql);
	my $e = $cs->{stderr};
	$cs->{stderr} = '';
	return ($o, $e);
}

# nothing renamed, v1 live and v2 shadow by oid, no lock anywhere
sub unchanged
{
	my ($name, @except) = @_;
	is(schemas_like($node, 'app%'), 'app,app_next', "$name: no schema renamed nor added");
	is_deeply(live_oids($node, 'app'), $v1, "$name: app holds the v1 tables (same oids)");
	is_deeply(live_oids($node, 'app_next'), $v2, "$name: app_next holds the v2 tables (same oids)");
	is(relation_locks($node, [ 'app', 'app_next', 'reporting' ], \@except), '',
		"$name: no other backend holds a lock on app, app_next or reporting");
	is(session_locks($node, $cs_pid), '', "$name: the refused session holds no lock at all");
	is($node->safe_psql('postgres', "SELECT count(*) FROM migrate.cutover WHERE plan = 'bg'"), '0',
		"$name: no cutover recorded");
	is($node->safe_psql('postgres',
			"SELECT count(*) FROM migrate.run WHERE plan = 'bg' AND mode = 'cutover' AND state = 'succeeded'"),
		'0', "$name: no cutover run succeeded");
	return;
}

# ---- (a) a tampered shadow row: verify fails, 55000 naming the table ----
$node->safe_psql('postgres', "UPDATE app_next.orders SET note = 'tampered' WHERE id = 17");
($out, $err) = in_cs("SELECT migrate_cutover('bg')");
is(sqlstate($err), '55000', '(a) a tampered shadow row: the cutover is refused with 55000') or diag $err;
like($err, qr/table app_next\.orders failed/, '(a) the error names the table (app_next.orders)');
unchanged('(a) tampered row');
is($node->safe_psql('postgres', 'SELECT note FROM app_next.orders WHERE id = 17'), 'tampered',
	'(a) the tampered row is not silently repaired');
$node->safe_psql('postgres',
	'UPDATE app_next.orders n SET note = s.note FROM app.orders s WHERE s.id = n.id AND n.id = 17');

# ---- (b) an application transaction holds ROW EXCLUSIVE on app.orders ----
my $blocker = $node->background_psql('postgres', on_error_stop => 0);
$blocker->query_safe('SET ROLE app_rw');
$blocker->query_safe('BEGIN');
$blocker->query_safe('WITH u AS (UPDATE app.orders SET version = version + 1, amount = amount + 1 '
	  . 'WHERE id = 42 RETURNING id) INSERT INTO public.ledger_upd (order_id) SELECT id FROM u');
my $bpid = $blocker->query_safe('SELECT pg_backend_pid()');
chomp $bpid;
my $t0 = time;
($out, $err) = in_cs("SELECT migrate_cutover('bg', lock_timeout => '100ms', max_attempts => 3)");
my $took = time - $t0;
is(sqlstate($err), '55P03', '(b) locks not obtained: the cutover is refused with 55P03') or diag $err;
like($err, qr/could not lock its live tables in 3 attempts/, '(b) the error says how many attempts were made');
cmp_ok($took, '>=', 0.3, sprintf('(b) it tried for at least 3 x 100 ms (%.2f s)', $took));
cmp_ok($took, '<', 30, '(b) and gave up in reasonable time');
unchanged('(b) locks not obtained', $bpid);
like(relation_locks($node, ['app']), qr/^$bpid RowExclusiveLock app\.orders/m,
	'(b) the blocker still holds its lock');
$blocker->{stderr} = '';
$blocker->query('COMMIT');
is($blocker->{stderr}, '', '(b) the blocking transaction then commits unharmed');
$blocker->quit;
is($node->safe_psql('postgres', 'SELECT version FROM app.orders WHERE id = 42'), '1',
	"(b) the blocker's update is in app.orders");

# ---- the cutover under pgbench ----
my $script = pgbench_script("$tmp/cutover_writer.sql");
my $seconds = 20;
my $pg = start_pgbench($node, $script, $seconds);
my $pg_t0 = time;
sleep 4;
my $writes_before = $node->safe_psql('postgres', 'SELECT count(*) FROM public.ledger');
cmp_ok($writes_before, '>', 100, "the writer is writing ($writes_before orders before the cutover)");
$t0 = time;
($ret, $out, $err) = psql_err($node, "SELECT migrate_cutover('bg');");
my $cut_s = time - $t0;
my ($run) = $out =~ /^(\d+)$/m;
ok($ret == 0 && $run, sprintf('migrate_cutover under writers returned run id %s (%.2f s)', $run // '-', $cut_s))
  or diag $err;
my $left = $seconds - (time - $pg_t0);
cmp_ok($left, '>', 2, sprintf('the writer kept writing %.1f s after the cutover', $left));
my ($rc, $processed, $failed, $pgout, $pgerr) = finish_pgbench($pg);
is($rc, 0, "pgbench exited 0 ($processed transactions)") or diag "$pgout\n$pgerr";
is($failed, 0, 'pgbench: no failed transaction') or diag "$pgout\n$pgerr";
cmp_ok($processed, '>', 2000, "pgbench ran at the rate asked ($processed transactions in $seconds s)");
$run ||= 0;
# a child that committed with its parent after the parent's pass is refused
# by the foreign key once (23503), retried after every pass, and loaded
# (the finding stays, loaded); no row stays quarantined
is($node->safe_psql('postgres',
		"SELECT count(*) FROM migrate.reject j JOIN migrate.run r USING (run_id) WHERE r.plan = 'bg'"
		  . " AND (NOT j.loaded OR j.reason <> '23503')"),
	'0', 'the syncs under the writer left nothing quarantined (every row the writer commits is valid)');
if (!$run)
{
	# what the syncs quarantined, and the verify's findings, for the report
	diag $node->safe_psql('postgres',
		"SELECT string_agg('rejects of run ' || run_id || ' (' || mode || '), ' || target::text || ' ' || reason || ': ' "
		  . "|| n || ' (keys ' || keys || ')', E'\\n') FROM ("
		  . "SELECT j.run_id, r.mode, j.target, j.reason, count(*) AS n, string_agg(j.source_key, ',' ORDER BY j.source_key) AS keys "
		  . "FROM migrate.reject j JOIN migrate.run r USING (run_id) WHERE r.plan = 'bg' GROUP BY 1, 2, 3, 4) x");
}
# the cutover failed under the writer (a failure above): the writer has
# stopped, the cutover again, so that what follows checks that swap (the
# writes after a swap excepted) rather than nothing
my $under_writer = $run ? 1 : 0;
if (!$run)
{
	($ret, $out, $err) = psql_err($node, "SELECT migrate_cutover('bg');");
	($run) = $out =~ /^(\d+)$/m;
	ok($run, 'with the writer stopped, the cutover succeeds (the checks below test that swap)') or diag $err;
	$run ||= 0;
}
SKIP:
{
	skip 'no cutover succeeded: no swap to check', 1 unless $run;

my $c = cutover_row($node, $run) || {};
is($node->safe_psql('postgres', "SELECT mode || ' ' || state FROM migrate.run WHERE run_id = $run"),
	'cutover succeeded', 'the cutover recorded its own run (mode cutover, succeeded)');
is(join(' ', map { $_ // '' } @$c{qw(plan live shadow state)}), 'bg app app_next swapped',
	'migrate.cutover has the row: plan, live, shadow, state swapped');
my $retired = $c->{retired} || 'none';
cmp_ok($c->{attempts} // 0, '>=', 1, "migrate.cutover.attempts = " . ($c->{attempts} // 'none'));
cmp_ok($c->{lock_held_ms} // -1, '>', 0, 'migrate.cutover.lock_held = ' . ($c->{lock_held_ms} // '-') . ' ms');
diag sprintf('cutover: %.2f s, attempts %s, lock_wait %s ms, lock_held %s ms, retired schema %s',
	$cut_s, $c->{attempts} // '-', $c->{lock_wait_ms} // '-', $c->{lock_held_ms} // '-', $retired);

# the swap: app is the former app_next, the v1 tables are retired
is(schemas_like($node, 'app%'), "app,$retired", "app_next is gone (it is app now), app is $retired");
is_deeply(live_oids($node, 'app'), $v2, 'app holds the former app_next tables (same oids)');
is_deeply(live_oids($node, $retired), $v1, "the v1 tables are in the retired schema $retired");
is(app_version($node), 'v2', 'app is v2');

# nothing lost, nothing doubled
my $n_ledger = $node->safe_psql('postgres', 'SELECT count(*) FROM public.ledger');
my $n_cust = $node->safe_psql('postgres', 'SELECT count(*) FROM public.ledger_cust');
my $n_upd = $node->safe_psql('postgres', 'SELECT count(*) FROM public.ledger_upd');
note "ledgers: $n_ledger orders, $n_cust customers, $n_upd updates";
is($node->safe_psql('postgres',
		'SELECT count(*) FROM public.ledger l WHERE NOT EXISTS (SELECT FROM app.orders o WHERE o.id = l.order_id '
		  . "AND o.note LIKE 'writer %')"),
	'0', "every order in the ledger ($n_ledger) is in app.orders");
is($node->safe_psql('postgres',
		'SELECT count(*) FROM public.ledger l WHERE NOT EXISTS (SELECT FROM app.events e WHERE e.id = l.event_id '
		  . 'AND e.order_id = l.order_id)'),
	'0', 'every event in the ledger is in app.events, with its order');
is($node->safe_psql('postgres',
		'SELECT count(*) FROM public.ledger_cust l WHERE NOT EXISTS (SELECT FROM app.customers c WHERE c.id = l.customer_id)'),
	'0', "every customer in the ledger ($n_cust) is in app.customers");
is($node->safe_psql('postgres', "SELECT count(*) FROM app.orders WHERE note IS DISTINCT FROM 'parent'"), $CutoverTest::ORDERS + $n_ledger,
	'app.orders holds the seeded orders plus the ledger, nothing more');
is($node->safe_psql('postgres', 'SELECT count(*) FROM app.events'), $CutoverTest::ORDERS + $n_ledger,
	'app.events holds the seeded events plus the ledger, nothing more');
is($node->safe_psql('postgres', 'SELECT count(*) FROM app.customers'), $CutoverTest::CUSTOMERS + $n_cust,
	'app.customers holds the seeded customers plus the ledger, nothing more');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM app.orders o WHERE o.id <= $CutoverTest::ORDERS AND (o.version <> "
		  . '(SELECT count(*) FROM public.ledger_upd u WHERE u.order_id = o.id) OR o.amount <> o.id * 1.25 + o.version)'),
	'0', "every seeded order's version and amount count exactly its committed updates ($n_upd)");

# before and after the swap
my $before = $node->safe_psql('postgres',
	"SELECT count(*) FROM public.ledger l WHERE EXISTS (SELECT FROM $retired.orders o WHERE o.id = l.order_id)");
my $after = $n_ledger - $before;
cmp_ok($before, '>', $writes_before - 1, "$before ledger orders landed before the swap (in the old tables, synced)");
SKIP:
{
	skip 'the swap was not under the writer', 1 unless $under_writer;
	cmp_ok($after, '>', 100, "$after ledger orders landed after the swap (in the new tables)");
}
is($node->safe_psql('postgres',
		"SELECT count(*) FROM public.ledger l WHERE NOT EXISTS (SELECT FROM $retired.orders o WHERE o.id = l.order_id) "
		  . "AND l.order_id <= (SELECT max(id) FROM $retired.orders)"),
	'0', 'every id the writer got after the swap is beyond every id before it (orders)');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM public.ledger_cust l WHERE NOT EXISTS (SELECT FROM $retired.customers c WHERE c.id = l.customer_id) "
		  . "AND l.customer_id <= (SELECT max(id) FROM $retired.customers)"),
	'0', 'and beyond every id before it (customers, identity)');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM $retired.orders r JOIN app.orders n USING (id) WHERE n.version < r.version "
		  . 'OR (n.version = r.version AND (n.customer_id, n.amount, n.note, n.amount_cents) IS DISTINCT FROM '
		  . '(r.customer_id, r.amount, r.note, (r.amount * 100)::bigint))'),
	'0', 'each order from before the swap is its last v1 version, mapped (or a later update)');
for my $t (qw(customers events))
{
	my %cols = (customers => "id, name, email, email_domain", events => "id, order_id, kind, kind_upper");
	my %map = (customers => "id, name, email, split_part(email, '\@', 2)", events => "id, order_id, kind, upper(kind)");
	is(rows_md5($node, "SELECT $cols{$t} FROM app.$t WHERE id IN (SELECT id FROM $retired.$t)"),
		rows_md5($node, "SELECT $map{$t} FROM $retired.$t"),
		"app.$t: the rows from before the swap are the v1 rows, mapped");
}

# views, inbound foreign keys, grants, sequences
is($node->safe_psql('postgres', 'SELECT sum(orders) FROM reporting.order_totals'),
	$node->safe_psql('postgres', 'SELECT count(*) FROM app.orders'),
	'the view reporting.order_totals reads the new app.orders');
is($node->safe_psql('postgres',
		"SELECT string_agg(DISTINCT d.refobjid::regclass::text, ',' ORDER BY d.refobjid::regclass::text) "
		  . "FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid "
		  . "WHERE r.ev_class = 'reporting.order_totals'::regclass AND d.refclassid = 'pg_class'::regclass "
		  . 'AND d.refobjid <> r.ev_class'),
	'app.customers,app.orders', 'the view depends on the new app tables only');
is($node->safe_psql('postgres',
		"SELECT confrelid FROM pg_constraint WHERE conrelid = 'reporting.notes'::regclass AND contype = 'f'"),
	$v2->{orders}, 'the foreign key of reporting.notes points at the new app.orders');
my $new_id = $node->safe_psql('postgres', "INSERT INTO app.orders (customer_id, amount, note) VALUES (1, 1, 'parent') RETURNING id");
($ret, $out, $err) = psql_err($node, "INSERT INTO reporting.notes (order_id, body) VALUES ($new_id, 'after the swap');");
is($ret, 0, "a note on order $new_id (only in the new tables) is accepted") or diag $err;
($ret, $out, $err) = psql_err($node, "INSERT INTO reporting.notes (order_id, body) VALUES (-1, 'bad');");
is(sqlstate($err), '23503', 'a note on a missing order fails with 23503');
($ret, $out, $err) = psql_err($node,
	"DO \$\$DECLARE c name; BEGIN FOR c IN SELECT conname FROM pg_constraint WHERE conrelid = 'reporting.notes'::regclass "
	  . "AND contype = 'f' LOOP EXECUTE format('ALTER TABLE reporting.notes VALIDATE CONSTRAINT %I', c); END LOOP; END\$\$;");
is($ret, 0, 'the re-pointed foreign key validates') or diag $err;
($ret, $out, $err) = psql_err($node, q{
	SET ROLE app_rw;
	SELECT count(*) > 0 FROM app.orders;
	SELECT count(*) > 0 FROM reporting.order_totals;
	WITH c AS (INSERT INTO app.customers (name, email) VALUES ('role', 'r@x') RETURNING id),
	     o AS (INSERT INTO app.orders (customer_id, amount) SELECT id, 1 FROM c RETURNING id)
	INSERT INTO app.events (order_id, kind) SELECT id, 'role' FROM o;
	UPDATE app.orders SET note = 'by app_rw' WHERE id = 1;
});
is($ret, 0, 'app_rw reads and writes the new tables and the view (grants carried)') or diag $err;
for my $t (qw(customers orders events))
{
	is($node->safe_psql('postgres',
			"SELECT nextval(pg_get_serial_sequence('app.$t', 'id')) > (SELECT max(id) FROM app.$t)"),
		't', "the sequence of app.$t issues beyond its max key");
}

# ---- rollback of the cutover run ----
$node->safe_psql('postgres', "DELETE FROM reporting.notes WHERE body IN ('after the swap')");
# the new tables were written since the swap: refused unless forced
my $swapped_schemas = schemas_like($node, '%');
($ret, $out, $err) = psql_err($node, "SELECT migrate_rollback($run);");
is(sqlstate($err), '55000', 'the rollback is refused (55000): the new tables were written since the swap')
  or diag $err;
like($err, qr/app\.orders \(\d+ rows? inserted or updated since the swap/, 'it names app.orders and its rows written since the swap');
is(schemas_like($node, '%'), $swapped_schemas, 'the refused rollback renamed nothing');
is_deeply(live_oids($node, 'app'), $v2, 'app still holds the v2 tables');
is(relation_locks($node, [ 'app', $retired ]), '', 'and no lock is left');
($ret, $out, $err) = psql_err($node, "SET client_min_messages = warning; SELECT migrate_rollback($run, force => true);");
is($ret, 0, "migrate_rollback($run, force => true) of the cutover succeeds") or diag $err;
like($err, qr/reversed by force/, 'with a warning that the writes since the swap stay in the shadow tables');
is(schemas_like($node, 'app%'), 'app,app_next', 'after the rollback: app and app_next, no retired schema');
is_deeply(live_oids($node, 'app'), $v1, 'app holds the v1 tables again (same oids)');
is_deeply(live_oids($node, 'app_next'), $v2, 'app_next holds the v2 tables again');
is(app_version($node), 'v1', 'app is v1');
is($node->safe_psql('postgres',
		"SELECT string_agg(DISTINCT d.refobjid::text, ',' ORDER BY d.refobjid::text) "
		  . "FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid "
		  . "WHERE r.ev_class = 'reporting.order_totals'::regclass AND d.refclassid = 'pg_class'::regclass "
		  . 'AND d.refobjid <> r.ev_class'),
	join(',', sort ($v1->{customers}, $v1->{orders})), 'the view depends on the v1 tables again');
is($node->safe_psql('postgres',
		"SELECT confrelid FROM pg_constraint WHERE conrelid = 'reporting.notes'::regclass AND contype = 'f'"),
	$v1->{orders}, 'the foreign key of reporting.notes points at the v1 app.orders again');
is($node->safe_psql('postgres',
		"SELECT has_table_privilege('app_rw', 'app_next.orders', 'INSERT') OR has_table_privilege('app_rw', 'app_next.orders', 'SELECT')"),
	'f', 'the grants the swap added to the v2 tables are gone');
($ret, $out, $err) = psql_err($node, q{
	SET ROLE app_rw;
	WITH o AS (INSERT INTO app.orders (customer_id, amount) VALUES (1, 1) RETURNING id)
	INSERT INTO app.events (order_id, kind) SELECT id, 'after rollback' FROM o;
});
is($ret, 0, 'app_rw writes the v1 tables after the rollback') or diag $err;
is($node->safe_psql('postgres',
		"SELECT (SELECT max(id) FROM app.orders) > (SELECT max(id) FROM app_next.orders)"),
	't', 'the v1 sequence issues beyond what the v2 tables issued meanwhile');
is(cutover_row($node, $run)->{state} // '', 'rolled_back', 'migrate.cutover says rolled_back');
my $schemas = schemas_like($node, '%');
($ret, $out, $err) = psql_err($node, "SELECT migrate_rollback($run);");
is($ret, 0, 'a second rollback of the cutover run succeeds') or diag $err;
is(schemas_like($node, '%'), $schemas, 'and is a no-op: the same schemas');
is_deeply(live_oids($node, 'app'), $v1, 'and app still holds the v1 tables');

}
$cs->quit;
}

# ---- (c) a remote source that moves past the fence during the final sync ----
# The source's writes are placed exactly: the cutover waits for its locks
# (a session holds ROW EXCLUSIVE on inv.stock) while the source's writer
# changes row 7; once it holds them, its final sync stops while re-reading
# row 7 (the mapping's hold_under_lock() waits for the gate while someone
# holds EXCLUSIVE on inv.stock, i.e. only under the cutover's locks), the
# writer changes row 8, the gate opens: row 8's change arrived during the
# final sync, after the fence.
SKIP:
{
	skip 'TODO: migrate_cutover() is not delivered yet (h14-cutover)', 1 unless $have_cutover;
	$node->safe_psql('postgres', q{
		CREATE SCHEMA inv;
		CREATE TABLE inv.stock (id int PRIMARY KEY, parent_id int, amount numeric(12,2), note text, day date);
		CREATE SCHEMA inv_next;
		CREATE TABLE inv_next.stock (id int PRIMARY KEY, parent_id int, amount numeric(12,2), note text, day date);
		CREATE FUNCTION public.hold_under_lock(p_id int, p_note text) RETURNS text
		LANGUAGE plpgsql VOLATILE AS $$
		BEGIN
		    IF p_id = 7 AND EXISTS (SELECT FROM pg_catalog.pg_locks l WHERE l.locktype = 'relation'
		                            AND l.relation = 'inv.stock'::pg_catalog.regclass
		                            AND l.mode = 'ExclusiveLock' AND l.granted) THEN
		        PERFORM pg_catalog.pg_advisory_lock_shared(4242);
		        PERFORM pg_catalog.pg_advisory_unlock_shared(4242);
		    END IF;
		    RETURN p_note;
		END $$;
		SELECT migrate_plan('rb', source_schema => 'legacy', target_schema => 'inv_next',
		                    options => '{"cutover_into": "inv"}');
		SELECT migrate_table('rb', 'legacy.stock', 'stock', capture => 'trigger');
		SELECT migrate_column('rb', 'stock', 'note', 'public.hold_under_lock(s.id, s.note)');
	});
	my $rv1 = $node->safe_psql('postgres', "SELECT 'inv.stock'::regclass::oid");
	$node->safe_psql('migrate_src', $node->safe_psql('postgres', "SELECT migrate_capture_sql('rb')"));
	($ret, $out, $err) = psql_err($node, "SELECT migrate_run('rb', mode => 'incremental');");
	is($ret, 0, '(c) the incremental run of the remote plan succeeds') or diag $err;

	my $gate = gate_close($node);
	my $lb = $node->background_psql('postgres', on_error_stop => 0);
	$lb->query_safe('BEGIN');
	$lb->query_safe('LOCK TABLE inv.stock IN ROW EXCLUSIVE MODE');
	my $rs = $node->background_psql('postgres', on_error_stop => 0);
	$rs->query_safe("\\set VERBOSITY verbose");
	$rs->query_safe("SET client_min_messages = warning");
	my $rs_pid = $rs->query_safe('SELECT pg_backend_pid()');
	chomp $rs_pid;
	$rs->{stderr} = '';
	$rs->query_until(qr/cutting over/,
		"\\echo cutting over\nSELECT migrate_cutover('rb', lock_timeout => '60s', max_attempts => 1);\n");
	ok($node->poll_query_until('postgres',
			"SELECT count(*) = 1 FROM pg_locks WHERE pid = $rs_pid AND relation = 'inv.stock'::regclass "
			  . "AND mode = 'ExclusiveLock' AND NOT granted"),
		'(c) the cutover passed its verify gate and waits for the lock on inv.stock');
	$node->safe_psql('migrate_src', "UPDATE stock SET amount = amount + 1, note = 'moved 1' WHERE id = 7");
	$lb->query_safe('COMMIT');
	$lb->quit;
	# the final sync reaches the gate, or the cutover ends without one
	my $gq = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 AND objid = 4242 AND NOT granted";
	$node->poll_query_until('postgres',
		"SELECT EXISTS ($gq) OR (SELECT state <> 'active' FROM pg_stat_activity WHERE pid = $rs_pid)");
	my $held = $node->safe_psql('postgres', $gq);
	ok($held ne '' && $held ne $rs_pid,
		"(c) the final sync's worker (" . ($held || 'none') . ') re-reads row 7 under the cutover\'s locks (waits at the gate)');
	if ($held ne '')
	{
		like(relation_locks($node, ['inv']), qr/^$rs_pid ExclusiveLock inv\.stock$/m,
			'(c) the cutover holds EXCLUSIVE on inv.stock meanwhile');
		$node->safe_psql('migrate_src', "UPDATE stock SET amount = amount + 1, note = 'moved 2' WHERE id = 8");
	}
	gate_open($gate);
	$rs->query('SELECT 1');
	my $rerr = $rs->{stderr};
	is(sqlstate($rerr), $FENCE_ERRCODE,
		"(c) the source moved past the fence: the cutover is refused with $FENCE_ERRCODE") or diag $rerr;
	if (sqlstate($rerr) eq '')
	{
		# it swapped: what the new inv.stock lacks
		diag '(c) the cutover swapped; rows 7 and 8, source: '
		  . $node->safe_psql('migrate_src', 'SELECT string_agg(id || \' \' || amount || \' \' || note, \'; \' ORDER BY id) FROM stock WHERE id IN (7, 8)')
		  . '; new inv.stock: '
		  . $node->safe_psql('postgres', 'SELECT string_agg(id || \' \' || amount || \' \' || note, \'; \' ORDER BY id) FROM inv.stock WHERE id IN (7, 8)');
	}
	like($rerr, qr/the source moved past the fence during the final sync/,
		'(c) the error says the source moved past the fence');
	like($rerr, qr/inv_next\.stock/, '(c) and names the table whose change a second sync found');
	is(schemas_like($node, 'inv%'), 'inv,inv_next', '(c) no schema renamed');
	is($node->safe_psql('postgres', "SELECT 'inv.stock'::regclass::oid"), $rv1, '(c) inv.stock is the old table');
	is(relation_locks($node, [ 'inv', 'inv_next' ]), '', '(c) no backend holds a lock on inv or inv_next');
	is(session_locks($node, $rs_pid), '', '(c) the refused session holds no lock at all');
	is($node->safe_psql('postgres', "SELECT count(*) FROM migrate.cutover WHERE plan = 'rb'"), '0',
		'(c) no cutover recorded');
	$rs->quit;

	# the source quiet, the cutover goes through: inv is the source
	($ret, $out, $err) = psql_err($node, "SELECT migrate_cutover('rb');");
	is($ret, 0, '(c) with the source quiet, the cutover of the remote plan succeeds') or diag $err;
	my ($rrun) = $out =~ /^(\d+)$/m;
	SKIP:
	{
		skip '(c) the second cutover failed: no swap to check', 1 unless $rrun;
		my $rret = (cutover_row($node, $rrun) || {})->{retired} || 'none';
		is(schemas_like($node, 'inv%'), join(',', sort('inv', $rret)), "(c) inv_next is inv now, the old inv is $rret");
		is($node->safe_psql('postgres', "SELECT to_regclass('$rret.stock')::oid"), $rv1,
			'(c) the old inv.stock is retired');
		is(table_checksum($node, 'postgres', 'inv.stock'), source_checksum($node, 'stock'),
			'(c) inv.stock equals the source, both late changes included');
	}
}

$node->stop;
done_testing();
