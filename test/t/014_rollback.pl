# 014_rollback.pl: migrate_rollback() killed half way, then again: exact.
#
# Two tables in foreign-key order (customers 2000 rows, orders 6000), both
# holding rows before the run (customers 1..1000, orders 1..2000, with other
# values, the orders pointing at customers 1..1000).  An upsert run
# overwrites those and inserts the rest; its overwritten orders then point
# at customers the run inserted, so the rollback must restore the orders
# before it deletes those customers.  A row trigger on orders (made after
# the run) holds the rollback at order 1500 behind the gate (MigrateTest.pm)
# while it restores orders; the rollback's backend is then killed
# (kill -9: the server restarts; and pg_terminate_backend).  After each:
# nothing of the rollback is left (the targets are as the run left them,
# the undo log is whole, no migrate.rollback row), and a second rollback
# returns both tables to their checksums before the run; a third is a no-op.

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use MigrateTest;
use PostgreSQL::Test::Utils;
use Test::More;

my @tables = qw(customers orders);
my $node = start_node('rollback', conf => { restart_after_crash => 'on' });
create_source(
	$node,
	tables => [
		{ name => 'customers', rows => 2000 },
		{ name => 'orders', rows => 6000, parent => 'customers' },
	]);
create_plan($node, 'p', tables => \@tables, mode => 'upsert');

# the targets before the run
$node->safe_psql('postgres', q{
	INSERT INTO customers SELECT g, NULL, g, 'before ' || g, date '2019-01-01' FROM generate_series(1, 1000) g;
	INSERT INTO orders SELECT g, g % 1000 + 1, g, 'before ' || g, date '2019-01-01' FROM generate_series(1, 2000) g;
	-- rollback runs with search_path pg_catalog, pg_temp: the trigger sets its own
	CREATE FUNCTION test_rollback_gate() RETURNS trigger LANGUAGE plpgsql SET search_path = public AS $$
	BEGIN
	    PERFORM public.test_gate('rollback', OLD.id, '');
	    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
	END $$;
});
my %before = map { $_ => table_checksum($node, 'postgres', $_) } @tables;

for my $how ('kill -9', 'pg_terminate_backend')
{
	my ($run, $err) = run_plan($node, 'p', batch_size => 500);
	ok($run, "$how: upsert run $run") or diag $err;
	is(run_row($node, $run)->{state}, 'succeeded', "$how: run succeeded");
	is($node->safe_psql('postgres',
		"SELECT string_agg(undo, ',' ORDER BY load_order) FROM migrate.run_table WHERE run_id = $run"),
		'log,log', "$how: both tables keep an undo log");
	my %after = map { $_ => table_checksum($node, 'postgres', $_) } @tables;
	isnt($after{orders}, $before{orders}, "$how: the run changed orders");
	# an overwritten order now points at a customer the run inserted
	is($node->safe_psql('postgres', 'SELECT parent_id FROM orders WHERE id = 1500'),
		'1501', "$how: order 1500 points at a new customer");
	my $undo = $node->safe_psql('postgres',
		"SELECT count(*) FROM migrate.run_table t, migrate._undo_log(t.run_id, t.target) WHERE t.run_id = $run");
	is($undo, '8000', "$how: 8000 undo rows (1000 + 2000 overwritten, 5000 inserted)");

	$node->safe_psql('postgres', q{
		CREATE TRIGGER test_rollback_gate BEFORE UPDATE OR DELETE ON orders
		    FOR EACH ROW EXECUTE FUNCTION test_rollback_gate()});
	set_gate($node, rollback => [1500]);
	my $gate = gate_close($node);
	my $rb = $node->background_psql('postgres', on_error_stop => 0);
	$rb->query_until(qr/started/, "\\echo started\nSELECT * FROM migrate_rollback($run);\n");
	my $pid = gate_wait($node);
	ok($pid, "$how: the rollback waits at order 1500 (backend $pid)");
	if ($how eq 'kill -9')
	{
		kill 'KILL', $pid;
		$node->poll_query_until('postgres', 'SELECT true') or die 'no restart';
	}
	else
	{
		$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
		$node->poll_query_until('postgres',
			"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid") or die 'still there';
	}
	eval { $rb->quit; 1; };
	gate_open($gate);
	set_gate($node);

	# nothing of the killed rollback is left
	is(table_checksum($node, 'postgres', $_), $after{$_}, "$how: $_ as the run left it")
	  for @tables;
	is($node->safe_psql('postgres', "SELECT count(*) FROM migrate.run_table t, migrate._undo_log(t.run_id, t.target) WHERE t.run_id = $run"),
		$undo, "$how: the undo log is whole");
	is($node->safe_psql('postgres', "SELECT count(*) FROM migrate.rollback WHERE run_id = $run"),
		'0', "$how: no rollback recorded");

	# again, to the end: exact
	my $res = $node->safe_psql('postgres',
		"SELECT string_agg(format('%s %s %s %s %s', target, rows_deleted, rows_restored, rows_reinserted, conflicts), '; ' ORDER BY target::text) FROM migrate_rollback($run)");
	is($res, 'customers 1000 1000 0 0; orders 4000 2000 0 0', "$how: second rollback's counts");
	is(table_checksum($node, 'postgres', $_), $before{$_}, "$how: $_ exactly as before the run")
	  for @tables;
	is($node->safe_psql('postgres', "SELECT count(*) FROM migrate.run_table t, migrate._undo_log(t.run_id, t.target) WHERE t.run_id = $run"),
		'0', "$how: the undo log is replayed");
	my ($rc, $out, $stderr) = $node->psql('postgres', "SELECT sum(rows_deleted + rows_restored + rows_reinserted) FROM migrate_rollback($run)");
	is($out, '0', "$how: a third rollback changes nothing");
	like($stderr, qr/already rolled back/, "$how: and says so");
	is(table_checksum($node, 'postgres', $_), $before{$_}, "$how: $_ still as before the run")
	  for @tables;
	$node->safe_psql('postgres', 'DROP TRIGGER test_rollback_gate ON orders');
}

$node->stop;
done_testing();
