# MigrateTest.pm: shared helpers of the migrate TAP tests (test/t/*.pl).
#
# Each test makes its own throwaway clusters with PostgreSQL::Test::Cluster
# from the installed server (the one `pg_config` names), with the migrate
# extension installed into it.  The usual fixture, in one cluster:
#
#   database migrate_src     the source: tables  <name>(id int PRIMARY KEY,
#                            parent_id int, amount numeric(12,2), note text,
#                            day date), filled with generate_series
#   database postgres        the target: the same tables with their foreign
#                            keys, postgres_fdw loopback server "src",
#                            foreign tables in schema "legacy", extensions
#                            postgres_fdw and migrate, the gate (below)
#
# The gate makes a run stop at an exact place, so that tests do not depend on
# timing: a plan maps a table's "note" column through
# test_gate('<table>', s.id, s.note), which waits for advisory lock
# GATE_LOCK when (<table>, id) is listed in test_gate_key.  A test closes the
# gate (a session holding the lock), starts a run, waits until the worker is
# blocked in the middle of the batch holding that key, does its damage
# (cancel, pg_terminate_backend, kill -9, restart) and opens the gate.
# test_gate() can also sleep on every row of a table (test_gate_delay), to
# make a run last long enough to be hit at a moment chosen by progress.
#
# Helpers never hide failures: SQL errors die (safe_psql) unless a helper
# says it returns them.

package MigrateTest;

use strict;
use warnings;

use Exporter 'import';
use File::Basename qw(dirname);
use File::Copy qw(copy);
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

our @EXPORT = qw(
  start_node create_source create_plan
  run_plan start_run finish_run
  run_row run_table_rows wait_run_end worker_pid
  gate_close gate_wait gate_open set_gate set_delay
  table_checksum source_checksum
  check_recorded_invariants private_install
  released_install install_current install_file
  GATE_LOCK
);

use constant GATE_LOCK => 4242;

# start_node(name, conf => { guc => value, ... }, install_path => dir)
#
# A new cluster, started, with settings suited to the tests (a log line
# prefix with the SQLSTATE, %e) plus the given ones.  Values are quoted;
# @HOST@ in a value is replaced by the node's socket directory.
sub start_node
{
	my ($name, %o) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name,
		$o{install_path} ? (install_path => $o{install_path}) : ());
	$node->init;
	my %conf = (
		log_line_prefix => '%m [%p] %b %e ',
		log_min_messages => 'info',
		max_worker_processes => 8,
		%{ $o{conf} || {} });
	my $host = $node->host;
	s/\@HOST\@/$host/g for values %conf;
	$node->append_conf('postgresql.conf',
		join('', map { "$_ = '$conf{$_}'\n" } sort keys %conf));
	$node->start;
	return $node;
}

# create_source(node, tables => [ { name => 'orders', rows => 6000,
#                                   parent => 'customers', bad_every => 97 }, ... ])
#
# Tables are given parents first.  In migrate_src: the source tables.  In
# postgres: the target tables (same columns, primary key, foreign key to the
# parent), the loopback server, the foreign tables in schema legacy, the
# extensions and the gate.  Every bad_every-th row has a negative amount
# (a rule "amount >= 0" rejects it).
sub create_source
{
	my ($node, %o) = @_;
	my @tables = @{ $o{tables} };
	my %rows = map { $_->{name} => $_->{rows} } @tables;

	$node->safe_psql('postgres', 'CREATE DATABASE migrate_src');
	my ($src, $tgt) = ('', '');
	for my $t (@tables)
	{
		my $name = $t->{name};
		my $parent_expr =
		  $t->{parent} ? "g % $rows{$t->{parent}} + 1" : 'NULL::int';
		my $amount =
		  $t->{bad_every}
		  ? "CASE WHEN g % $t->{bad_every} = 0 THEN -1 ELSE g * 1.25 END"
		  : 'g * 1.25';
		$src .= qq{
			CREATE TABLE $name (id int PRIMARY KEY, parent_id int,
			                    amount numeric(12,2), note text, day date);
			INSERT INTO $name
			SELECT g, $parent_expr, $amount, 'note ' || g || ' ' || repeat('x', g % 30),
			       date '2020-01-01' + g % 1000
			  FROM generate_series(1, $t->{rows}) g;
		};
		my $fk = $t->{parent} ? " REFERENCES $t->{parent} (id)" : '';
		$tgt .= qq{
			CREATE TABLE $name (id int PRIMARY KEY, parent_id int$fk,
			                    amount numeric(12,2), note text, day date);
		};
	}
	$node->safe_psql('migrate_src', $src . 'ANALYZE;');

	my $host = $node->host;
	my $port = $node->port;
	$node->safe_psql(
		'postgres', qq{
		CREATE EXTENSION postgres_fdw;
		CREATE EXTENSION migrate;
		CREATE SERVER src FOREIGN DATA WRAPPER postgres_fdw
		    OPTIONS (host '$host', port '$port', dbname 'migrate_src', fetch_size '10000');
		CREATE USER MAPPING FOR CURRENT_USER SERVER src;
		CREATE SCHEMA legacy;
		IMPORT FOREIGN SCHEMA public FROM SERVER src INTO legacy;
		$tgt
		-- the gate: see the top of MigrateTest.pm
		CREATE TABLE test_gate_key (tab text, key bigint, PRIMARY KEY (tab, key));
		CREATE TABLE test_gate_delay (tab text PRIMARY KEY, seconds float8 NOT NULL);
		CREATE FUNCTION test_gate(p_tab text, p_key bigint, p_value text)
		RETURNS text LANGUAGE plpgsql VOLATILE AS \$\$
		DECLARE
		    d float8 := (SELECT seconds FROM test_gate_delay WHERE tab = p_tab);
		BEGIN
		    IF d IS NOT NULL THEN
		        PERFORM pg_sleep(d);
		    END IF;
		    IF EXISTS (SELECT 1 FROM test_gate_key WHERE tab = p_tab AND key = p_key) THEN
		        PERFORM pg_advisory_lock_shared(${\ GATE_LOCK});
		        PERFORM pg_advisory_unlock_shared(${\ GATE_LOCK});
		    END IF;
		    RETURN p_value;
		END \$\$;
	});
	return;
}

# create_plan(node, plan, tables => [names], mode => 'insert',
#             rules => { table => 'amount >= 0' }, gated => [tables])
#
# A plan over the source tables (schema legacy) into the same-named target
# tables.  Gated tables read their note column through test_gate().
sub create_plan
{
	my ($node, $plan, %o) = @_;
	my $mode = $o{mode} || 'insert';
	my $sql = "SELECT migrate_plan('$plan', source_schema => 'legacy');\n";
	for my $t (@{ $o{tables} })
	{
		$sql .= "SELECT migrate_table('$plan', '$t', '$t', mode => '$mode');\n";
	}
	for my $t (sort keys %{ $o{rules} || {} })
	{
		$sql .= "SELECT migrate_rule('$plan', '$t', '${t}_rule', \$r\$$o{rules}{$t}\$r\$);\n";
	}
	for my $t (@{ $o{gated} || [] })
	{
		$sql .= "SELECT migrate_column('$plan', '$t', 'note', "
		  . "'test_gate(''$t'', s.id, s.note)');\n";
	}
	$node->safe_psql('postgres', $sql);
	return;
}

# The SQL that starts a run: migrate.batch_size is read from the caller's
# session.  Errors are printed with their SQLSTATE (VERBOSITY verbose).
sub _run_sql
{
	my ($plan, %o) = @_;
	my @args = ("'$plan'");
	push @args, "dry_run => $o{dry_run}" if defined $o{dry_run};
	push @args, "wait => $o{wait}"       if defined $o{wait};
	push @args, "tables => ARRAY[" . join(', ', map { "'$_'" } @{ $o{tables} }) . "]"
	  if $o{tables};
	my $bs = $o{batch_size} || 500;
	return "\\set VERBOSITY verbose\nSET client_min_messages = warning;\n"
	  . "SET migrate.batch_size = $bs;\nSELECT migrate_run(" . join(', ', @args) . ");\n";
}

# run_plan(node, plan, batch_size => n, dry_run => bool, wait => bool, tables => [...])
#
# Runs migrate_run() and returns (run id or undef, stderr).  stderr has the
# error as "ERROR:  SQLSTATE: message" with its DETAIL/HINT lines.
sub run_plan
{
	my ($node, $plan, %o) = @_;
	my ($out, $err) = ('', '');
	$node->psql('postgres', _run_sql($plan, %o),
		stdout => \$out, stderr => \$err, on_error_stop => 0);
	return (($out =~ /^(\d+)$/m) ? $1 : undef, $err);
}

# start_run(node, plan, %options as for run_plan): migrate_run() in a
# background session that keeps waiting for the run; returns the session.
# Collect the outcome with finish_run().
sub start_run
{
	my ($node, $plan, %o) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	$s->query_until(qr/starting run/, "\\echo starting run\n" . _run_sql($plan, %o));
	return $s;
}

# finish_run(session): wait for the session's migrate_run() to return (or
# for the session to die, e.g. after a crash); returns (stdout, stderr) and
# closes the session.
sub finish_run
{
	my ($s) = @_;
	my ($out, $err);
	eval {
		$s->query('SELECT 1');
		1;
	};
	$out = $s->{stdout};
	$err = $s->{stderr};
	eval { $s->quit; 1; };
	return ($out, $err);
}

# The migrate.run row of a run, as a hash.
sub run_row
{
	my ($node, $run_id) = @_;
	my $r = $node->safe_psql('postgres',
		"SELECT state, coalesce(worker_pid, 0), coalesce(error, ''), plan "
		  . "FROM migrate.run WHERE run_id = $run_id");
	return undef if $r eq '';
	my @f = split /\|/, $r, 4;
	return { state => $f[0], worker_pid => $f[1], error => $f[2], plan => $f[3] };
}

# The migrate.run_table rows of a run, by target name.
sub run_table_rows
{
	my ($node, $run_id) = @_;
	my %rows;
	my $r = $node->safe_psql('postgres',
		"SELECT target::text, state, rows_read, rows_written, rows_rejected, rows_skipped, "
		  . "batches, coalesce(last_key, ''), load_order "
		  . "FROM migrate.run_table WHERE run_id = $run_id ORDER BY load_order");
	for my $line (split /\n/, $r)
	{
		my @f = split /\|/, $line;
		$rows{ $f[0] } = {
			state => $f[1], read => $f[2], written => $f[3], rejected => $f[4],
			skipped => $f[5], batches => $f[6], last_key => $f[7], order => $f[8] };
	}
	return \%rows;
}

# Wait until a run is no longer running; returns its state.
sub wait_run_end
{
	my ($node, $run_id) = @_;
	$node->poll_query_until('postgres',
		"SELECT state <> 'running' FROM migrate.run WHERE run_id = $run_id")
	  or die "run $run_id did not end";
	return run_row($node, $run_id)->{state};
}

# The pid of the worker of the running run of a plan (waits for it).
sub worker_pid
{
	my ($node, $plan) = @_;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM migrate.run WHERE plan = '$plan' AND state = 'running'")
	  or die "no running run of plan $plan";
	return $node->safe_psql('postgres',
		"SELECT worker_pid FROM migrate.run WHERE plan = '$plan' AND state = 'running'");
}

# set_delay(node, table => seconds): test_gate() sleeps this long on every
# row of the table, to slow a run down (replaces the previous delays).
sub set_delay
{
	my ($node, %delay) = @_;
	my $sql = "DELETE FROM test_gate_delay;\n";
	$sql .= "INSERT INTO test_gate_delay VALUES ('$_', $delay{$_});\n" for sort keys %delay;
	$node->safe_psql('postgres', $sql);
	return;
}

# set_gate(node, table => [keys]): the keys at which test_gate() waits
# (replaces the previous ones).
sub set_gate
{
	my ($node, %keys) = @_;
	my $sql = "DELETE FROM test_gate_key;\n";
	for my $t (sort keys %keys)
	{
		$sql .= "INSERT INTO test_gate_key VALUES ('$t', $_);\n" for @{ $keys{$t} };
	}
	$node->safe_psql('postgres', $sql);
	return;
}

# Close the gate: a session holding the gate's lock; returns it.
sub gate_close
{
	my ($node) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	$s->query_safe('SELECT pg_advisory_lock(' . GATE_LOCK . ')');
	return $s;
}

# Wait until a backend (the worker) waits at the gate; returns its pid.
sub gate_wait
{
	my ($node) = @_;
	my $q = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 "
	  . "AND objid = " . GATE_LOCK . " AND NOT granted";
	$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($q) w")
	  or die "nobody reached the gate";
	return $node->safe_psql('postgres', $q);
}

# Open the gate (end the session holding its lock).  The session may be
# gone already (crash, restart): that opens the gate too.
sub gate_open
{
	my ($s) = @_;
	eval { $s->query('SELECT pg_advisory_unlock(' . GATE_LOCK . ')'); 1; };
	eval { $s->quit; 1; };
	return;
}

# table_checksum(node, db, relation, where): "count:md5" of a relation's
# rows, independent of their order (md5 of the sorted md5 of each row's
# text).  Equal for a source table and a same-shaped target with the same
# rows.
sub table_checksum
{
	my ($node, $db, $rel, $where) = @_;
	$where = $where ? "WHERE $where" : '';
	return $node->safe_psql($db,
		"SELECT count(*) || ':' || coalesce(md5(string_agg(h, '' ORDER BY h)), '-') "
		  . "FROM (SELECT md5(t::text) AS h FROM $rel t $where) s");
}

# The checksum of a source table's rows, read in the source database.
sub source_checksum
{
	my ($node, $table, $where) = @_;
	return table_checksum($node, 'migrate_src', $table, $where);
}

# check_recorded_invariants(node, run_id, expect => { table => 'amount >= 0' },
#                           name => 'label')
#
# For a run that stopped anywhere (finished, failed, cancelled, killed): what
# is recorded must be exactly what is in the targets (which were empty before
# the run).  Per table of the run:
#   - rows_read = rows_written + rows_rejected + rows_skipped
#   - the target holds rows_written rows (no half batch)
#   - migrate.reject holds rows_rejected rows of the run (loaded = false)
#   - the target's rows are the source rows up to the checkpoint (last_key)
#     that match the table's expect filter (SQL over the source table, in
#     the source database: the rows that the rules and the target accept),
#     by checksum.
sub check_recorded_invariants
{
	my ($node, $run_id, %o) = @_;
	my $name  = $o{name} || "run $run_id";
	my $expect = $o{expect} || {};
	my $rows  = run_table_rows($node, $run_id);
	ok(scalar(keys %$rows) > 0, "$name: run_table rows exist");
	for my $t (sort { $rows->{$a}{order} <=> $rows->{$b}{order} } keys %$rows)
	{
		my $r = $rows->{$t};
		is($r->{read}, $r->{written} + $r->{rejected} + $r->{skipped},
			"$name, $t ($r->{state}): rows_read = rows_written + rows_rejected + rows_skipped");
		is($node->safe_psql('postgres', "SELECT count(*) FROM $t"),
			$r->{written}, "$name, $t: the target holds rows_written rows");
		is( $node->safe_psql('postgres',
				"SELECT count(*) FROM migrate.reject WHERE run_id = $run_id "
				  . "AND target = '$t'::regclass AND NOT loaded"),
			$r->{rejected},
			"$name, $t: migrate.reject holds rows_rejected rows");
		my $upto = $r->{last_key} eq '' ? 'false' : "id <= $r->{last_key}";
		my $filter = $expect->{$t} ? " AND ($expect->{$t})" : '';
		is(table_checksum($node, 'postgres', $t),
			source_checksum($node, $t, "$upto$filter"),
			"$name, $t: the target is the source up to last_key '$r->{last_key}'");
	}
	return $rows;
}

# private_install(dir): a private copy of the installed server under dir, in
# the same relative layout (dir/usr/lib/postgresql/15/bin, .../lib,
# dir/usr/share/postgresql/15), so that its migrate files can be swapped
# without touching the real installation.  The server finds its share and
# lib directories relative to its own binary (resolving symbolic links),
# so bin/ is copied; lib/ and share/extension/ are directories of
# symbolic links to the real files, without any migrate file.  Returns
# (install_path for PostgreSQL::Test::Cluster, its lib dir, its extension
# dir); dies when the installation has no <dir>/bin beside <dir>/lib.
sub private_install
{
	my ($dir) = @_;
	my %real;
	for my $what (qw(bindir pkglibdir sharedir))
	{
		$real{$what} = `pg_config --$what`;
		die "pg_config --$what failed" if $?;
		chomp $real{$what};
	}
	die "installation layout without <dir>/bin and <dir>/lib ($real{bindir}, $real{pkglibdir})"
	  unless dirname($real{bindir}) eq dirname($real{pkglibdir});
	my $inst = $dir . dirname($real{bindir});
	my $lib = "$inst/lib";
	my $share = $dir . $real{sharedir};
	make_path($lib, "$share/extension");
	system('cp', '-a', $real{bindir}, "$inst/bin") == 0 or die "cp $real{bindir}: $?";
	my $link_all = sub {
		my ($from, $to, $skip) = @_;
		opendir(my $dh, $from) or die "$from: $!";
		for my $f (grep { !/^\.\.?$/ && !$skip->($_) } readdir $dh)
		{
			symlink("$from/$f", "$to/$f") or die "symlink $to/$f: $!";
		}
		closedir $dh;
	};
	$link_all->($real{pkglibdir}, $lib, sub { $_[0] =~ /^migrate\./ });
	$link_all->($real{sharedir}, $share, sub { $_[0] eq 'extension' });
	$link_all->("$real{sharedir}/extension", "$share/extension", sub { $_[0] =~ /^migrate[.-]/ });
	return ($inst, $lib, "$share/extension");
}

# released_install(repo, commit, version)
#
# A private installation (private_install) holding only the released
# version of migrate built from its commit in repo's git history (git
# archive, then make with the installed server's pg_config): its library,
# control file and install script.  BAIL_OUTs when the commit is missing
# (a shallow clone) or does not build, or is not that version.  Returns
# (the built source tree, install_path, lib dir, extension dir).
sub released_install
{
	my ($repo, $commit, $version) = @_;
	my @git = ('git', '-c', 'safe.directory=*', '-C', $repo);
	ok(system(@git, 'cat-file', '-e', "$commit^{commit}") == 0,
		"the released $version (commit $commit) is in the git history")
	  or BAIL_OUT("commit $commit (the released $version) is missing from $repo: use a clone "
		  . "with its history (not shallow, or git fetch --unshallow)");
	my $src = PostgreSQL::Test::Utils::tempdir();
	{
		# a make of its own: not the variables of the make that runs the tests
		local $ENV{MAKEFLAGS};
		local $ENV{MAKELEVEL};
		local $ENV{MFLAGS};
		delete @ENV{qw(MAKEFLAGS MAKELEVEL MFLAGS)};
		my $pg_config = $ENV{PG_CONFIG} || 'pg_config';
		system("git -c safe.directory='*' -C '$repo' archive $commit | tar -x -C '$src'") == 0
		  or BAIL_OUT("git archive $commit failed");
		system("make -C '$src' PG_CONFIG='$pg_config' >'$src.log' 2>&1") == 0
		  or BAIL_OUT("building $version failed:\n" . slurp_file("$src.log"));
	}
	like(slurp_file("$src/migrate.control"), qr/^default_version = '\Q$version\E'$/m,
		"commit $commit is $version");
	my ($inst, $lib, $ext) = private_install(PostgreSQL::Test::Utils::tempdir());
	install_file("$src/migrate.so", "$lib/migrate.so");
	install_file("$src/migrate.control", "$ext/migrate.control");
	install_file("$src/sql/migrate--$version.sql", "$ext/migrate--$version.sql");
	return ($src, $inst, $lib, $ext);
}

# install_current(lib dir, extension dir)
#
# The package upgrade of a private installation: its migrate files are
# replaced by those of the real installation (the current tree's make
# install).  The server must be restarted to load the new library.
sub install_current
{
	my ($lib, $ext) = @_;
	my $real_ext = `pg_config --sharedir`;
	chomp $real_ext;
	$real_ext .= '/extension';
	my $real_lib = `pg_config --pkglibdir`;
	chomp $real_lib;
	unlink glob("$ext/migrate.control $ext/migrate--*.sql");
	install_file("$real_lib/migrate.so", "$lib/migrate.so");
	for my $f (glob("$real_ext/migrate.control $real_ext/migrate--*.sql"))
	{
		(my $name = $f) =~ s{.*/}{};
		install_file($f, "$ext/$name");
	}
	return;
}

# install_file(from, to): copy, then rename into place (a running server
# never sees half a file)
sub install_file
{
	my ($from, $to) = @_;
	copy($from, "$to.tmp") or die "copy $from: $!";
	rename("$to.tmp", $to) or die "rename $to: $!";
	return;
}

1;
