# 020_file_resume.pl: a file source (migrate_file) killed in the middle of
# its file and resumed, exactly once.
#
# A CSV of 30,000 records (a quoted field over two lines every 1,000th, a
# malformed line every 997th, a quantity that does not cast every 1,499th)
# is loaded in batches of 500 rows' worth of bytes.  The worker is stopped
# by the gate (MigrateTest.pm) at several records, killed (kill -9,
# pg_terminate_backend) or the server restarted; then: what is recorded is
# what is in the target, and migrate_resume() continues at the next unread
# record: the clean run's target and the same rejects, none twice.  A glob
# of three files with two workers (a unit per file) gives the same target
# as one worker.  The same records with '¦' and '¶' for ',' and the line
# break (the general reader, option line_end) load, stop and resume alike.

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use MigrateTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('file', conf => { restart_after_crash => 'on' });
create_source($node, tables => [ { name => 'unused', rows => 1 } ]);
my $dir = $node->basedir . '/files';
mkdir $dir or die "mkdir $dir: $!";

# the file, and the records the target must end with
my ($good, $bad_lines, $bad_casts) = (0, 0, 0);
sub write_csv
{
	my ($path, $from, $to) = @_;
	open my $fh, '>', $path or die "$path: $!";
	print $fh "qty,id,name\n";
	for my $i ($from .. $to)
	{
		if ($i % 997 == 0) { print $fh "$i,$i,\"broken,quote\n"; $bad_lines++; next; }
		if ($i % 1499 == 0) { print $fh "x$i,$i,name $i\n"; $bad_casts++; next; }
		my $name = $i % 1000 == 0 ? "\"two\nlines $i\"" : "name $i";
		print $fh "$i,$i,$name\n";
		$good++;
	}
	close $fh;
}
write_csv("$dir/items.csv", 1, 30000);
$node->safe_psql('postgres', qq{
	CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, qty int);
	SET client_min_messages = warning;
	SELECT migrate_plan('f', options => '{"reject_limit": null}');
	SELECT migrate_file('f', 'items', '$dir/items.csv');
	SELECT migrate_column('f', 'items', 'name', 'test_gate(''items'', s.id::bigint, s.name)');
});

my ($clean, $err) = run_plan($node, 'f', batch_size => 500);
ok($clean, "clean run $clean") or diag $err;
is(run_row($node, $clean)->{state}, 'succeeded', 'clean run succeeded');
my $r = run_table_rows($node, $clean)->{items};
is($r->{read}, 30000, 'the clean run read every record');
is($r->{written}, $good, "the clean run wrote the $good good records");
is($r->{rejected}, $bad_lines + $bad_casts, 'and rejected the others');
cmp_ok($r->{batches}, '>', 10, "in $r->{batches} batches");
my $clean_sum = table_checksum($node, 'postgres', 'items');
my $clean_rejects = $node->safe_psql('postgres',
	"SELECT string_agg(regexp_replace(source_key, '^.*:', '') || ' ' || reason, ',' ORDER BY regexp_replace(source_key, '^.*:', '')::int) "
	  . "FROM migrate.reject WHERE run_id = $clean");
is($node->safe_psql('postgres',
		"SELECT count(*) FROM migrate.reject WHERE run_id = $clean AND reason = '22P04'"),
	$bad_lines, 'each malformed line is a 22P04 reject');
$node->safe_psql('postgres', 'TRUNCATE items');

# Stop plan's run at record gkey (how: kill9, term, restart), then resume
# it: the clean run's target and rejects.
sub stop_and_resume
{
	my ($plan, $table, $gkey, $how, $rejects) = @_;
	my $name = "$plan: $how at record $gkey";
	note "=== $name";
	set_gate($node, items => [$gkey]);
	my $gate = gate_close($node);
	my $caller = start_run($node, $plan, batch_size => 500);
	my $pid = worker_pid($node, $plan);
	my $run = $node->safe_psql('postgres', "SELECT run_id FROM migrate.run WHERE plan = '$plan' AND state = 'running'");
	is(gate_wait($node), $pid, "$name: the worker is at the gate");
	if ($how eq 'term') { $node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)"); }
	elsif ($how eq 'kill9')
	{
		kill 'KILL', $pid or die "kill $pid: $!";
		$node->poll_query_until('postgres', 'SELECT true') or die 'the server did not come back';
	}
	else { $node->restart; }
	finish_run($caller);
	gate_open($gate);
	$node->restart unless $how eq 'restart';

	is($node->safe_psql('postgres', "SELECT DISTINCT run_state FROM migrate_status($run)"),
		'interrupted', "$name: the run is interrupted");
	my $rows = run_table_rows($node, $run)->{$table};
	is($rows->{read}, $rows->{written} + $rows->{rejected}, "$name: rows_read = rows_written + rows_rejected");
	is($node->safe_psql('postgres', "SELECT count(*) FROM $table"), $rows->{written},
		"$name: the target holds rows_written rows");
	cmp_ok($rows->{read}, '<', 30000, "$name: stopped in the middle of the file ($rows->{read} read)");
	is($node->safe_psql('postgres', "SELECT count(*) FROM migrate.reject WHERE run_id = $run"),
		$rows->{rejected}, "$name: migrate.reject holds rows_rejected rows");
	my $rerr = '';
	$node->psql('postgres', "SET client_min_messages = warning; SELECT migrate_resume($run)", stderr => \$rerr);
	is($rerr, '', "$name: migrate_resume($run) works");
	is(run_row($node, $run)->{state}, 'succeeded', "$name: the resumed run succeeded");
	is(table_checksum($node, 'postgres', $table), $clean_sum,
		"$name: the resumed target is the clean run's (nothing lost, nothing doubled)");
	is(rejects_of($run), $rejects, "$name: the same rejects as the clean run, each once");
	$node->safe_psql('postgres', "TRUNCATE $table");
}

# a run's rejects as 'line reason', in line order
sub rejects_of
{
	my ($run) = @_;
	return $node->safe_psql('postgres',
		"SELECT string_agg(regexp_replace(source_key, '^.*:', '') || ' ' || reason, ',' ORDER BY regexp_replace(source_key, '^.*:', '')::int) "
		  . "FROM migrate.reject WHERE run_id = $run");
}

# Run plan with two workers (batches of batch_size rows): it succeeds, in
# at least four units cut by bytes, with the one-worker target; the run id.
sub two_workers
{
	my ($plan, $table, $batch_size, $name) = @_;
	$node->safe_psql('postgres',
		"SET client_min_messages = warning; SET migrate.batch_size = $batch_size; SELECT migrate_run('$plan', parallel => 2)");
	my $run = $node->safe_psql('postgres', "SELECT max(run_id) FROM migrate.run WHERE plan = '$plan'");
	is(run_row($node, $run)->{state}, 'succeeded', "$name: succeeded");
	cmp_ok($node->safe_psql('postgres', "SELECT count(*) FROM migrate.run_range WHERE run_id = $run AND kind = 'load'"),
		'>=', 4, "$name: cut into units by bytes, inside the files");
	is(table_checksum($node, 'postgres', $table), $clean_sum, "$name: the one-worker target");
	return $run;
}

stop_and_resume('f', 'items', @$_, $clean_rejects)
  for ([ 4321, 'kill9' ], [ 15000, 'term' ], [ 29000, 'restart' ]);

# a glob of three files: two workers, a unit per file, the same target as one
my ($g1, $g2, $g3) = ("$dir/parts/a.csv", "$dir/parts/b.csv", "$dir/parts/c.csv");
mkdir "$dir/parts" or die $!;
write_csv($g1, 1, 9000);
write_csv($g2, 9001, 21000);
write_csv($g3, 21001, 30000);
$node->safe_psql('postgres', qq{
	SET client_min_messages = warning;
	SELECT migrate_plan('g', options => '{"reject_limit": null}');
	SELECT migrate_file('g', 'items', '$dir/parts/*.csv', source_table => 'items_parts');
});
two_workers('g', 'items', 500, 'two workers over three files');
$node->safe_psql('postgres', 'TRUNCATE items');

# one file, two workers: byte ranges cut inside records, each record once
$node->safe_psql('postgres', qq{
	SET client_min_messages = warning;
	SELECT migrate_plan('h', options => '{"reject_limit": null}');
	SELECT migrate_file('h', 'items', '$dir/items.csv', source_table => 'items_one');
});
my $hrun = two_workers('h', 'items', 200, 'two workers over one file');
is(rejects_of($hrun), $clean_rejects, 'two workers over one file: the same rejects, each once');
$node->safe_psql('postgres', 'TRUNCATE items');

# the same records with a delimiter and a line end of several bytes ('¦',
# '¶': the general reader): the same target and rejects (lines are what
# '¶' ends, so the same numbers), killed and resumed, and with two workers
my ($bar, $pil) = ("\xc2\xa6", "\xc2\xb6");
{
	my $text = '';
	open my $in, '<', "$dir/items.csv" or die $!;
	{ local $/; $text = <$in>; }
	close $in;
	# the CSV has no '¦', '¶' or quoted comma: a byte-wise swap is the same records
	$text =~ s/,/$bar/g;
	$text =~ s/\n/$pil/g;
	open my $out, '>:raw', "$dir/items.txt" or die $!;
	print $out $text;
	close $out;
}
$node->safe_psql('postgres', qq{
	CREATE TABLE items_t (id int PRIMARY KEY, name text NOT NULL, qty int);
	SET client_min_messages = warning;
	SELECT migrate_plan('t', options => '{"reject_limit": null}');
	SELECT migrate_file('t', 'items_t', '$dir/items.txt', delimiter => E'\\u00a6', line_end => E'\\u00b6');
	SELECT migrate_column('t', 'items_t', 'name', 'replace(test_gate(''items'', s.id::bigint, s.name), E''\\u00b6'', E''\\n'')');
});
my ($tclean, $terr) = run_plan($node, 't', batch_size => 500);
ok($tclean, "general reader: clean run $tclean") or diag $terr;
is(table_checksum($node, 'postgres', 'items_t'), $clean_sum, 'general reader: the CSV\'s target');
is(rejects_of($tclean), $clean_rejects, 'general reader: the CSV\'s rejects, at the same lines');
$node->safe_psql('postgres', 'TRUNCATE items_t');
stop_and_resume('t', 'items_t', @$_, $clean_rejects) for ([ 4321, 'kill9' ], [ 15000, 'term' ]);
my $trun = two_workers('t', 'items_t', 200, 'general reader, two workers over one file');
is(rejects_of($trun), $clean_rejects, 'general reader, two workers: the same rejects, each once');

is($node->safe_psql('postgres', "SELECT count(*) FROM migrate.run WHERE state = 'running'"), '0',
	'no run is left running');
$node->stop;
done_testing();
