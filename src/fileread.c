/*-------------------------------------------------------------------------
 *
 * fileread.c
 *	  The reader of file sources: a file (or a glob of files) of CSV, COPY
 *	  text or plain lines, read as records and cut into fields, with the
 *	  lines that do not parse marked as errors instead of failing the
 *	  read; the options that say how; and migrate._file_header(), the
 *	  field names of a file's header for migrate_file().
 *
 * The format rules and why this reader exists are in filesrc.c, the
 * foreign data wrapper it serves.  Records are read through a buffer of
 * 64 kB and cut into fields in memory the caller resets per record; a file
 * is never held whole.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <glob.h>
#include <unistd.h>

#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "common/string.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "storage/fd.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "fileread.h"

PG_FUNCTION_INFO_V1(migrate_file_header);

static bool read_record(FileReader *r);
static void parse_record(FileReader *r);
static void reader_unread_rest(FileReader *r, int first);

/* ---------------------------------------------------------------------
 * Options
 * ---------------------------------------------------------------------
 */

/*
 * A delimiter, quote, escape or line end: 1 to FILE_TOKEN_MAX - 1 bytes
 * (characters of any kind: '¦', '||'), without a line break unless it is
 * the line end.
 */
static void
token_option(const char *name, const char *value, bool line_end, FileToken *t)
{
	int			len = strlen(value);

	if (len == 0 || len >= FILE_TOKEN_MAX ||
		(!line_end && (strchr(value, '\n') != NULL || strchr(value, '\r') != NULL)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s of a file source must be 1 to %d bytes%s", name, FILE_TOKEN_MAX - 1,
						line_end ? "" : ", without a line break"),
				 errdetail("Got \"%s\".", value),
				 line_end ? 0 : errhint("A record's end other than a line break is option line_end.")));
	memcpy(t->s, value, len);
	t->len = len;
}

/* The token as the files' bytes hold it (records are found in those). */
static void
token_in_files(const char *name, const FileToken *t, int encoding, FileToken *f)
{
	char		text[FILE_TOKEN_MAX];
	char	   *conv;
	int			len;

	f->len = 0;
	if (t->len == 0)
		return;
	memcpy(text, t->s, t->len);
	text[t->len] = '\0';
	conv = pg_server_to_any(text, t->len, encoding);
	len = strlen(conv);
	if (len == 0 || len >= FILE_TOKEN_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s of a file source is %d bytes in encoding \"%s\", more than %d",
						name, len, pg_encoding_to_char(encoding), FILE_TOKEN_MAX - 1)));
	memcpy(f->s, conv, len);
	f->len = len;
}

static bool
token_is_prefix(const FileToken *a, const FileToken *b)
{
	return a->len > 0 && b->len > 0 &&
		memcmp(a->s, b->s, Min(a->len, b->len)) == 0;
}

/* Parse a foreign table's options (or migrate_file's arguments as options). */
void
migrate_file_parse_options(List *options, FileFormat *fmt, char **pattern)
{
	ListCell   *lc;
	char	   *delim = NULL,
			   *quote = NULL,
			   *escape = NULL,
			   *null_str = NULL,
			   *line_end = NULL;
	FileToken	eol = {{0}, 0};
	FileToken	delim_in_files;

	memset(fmt, 0, sizeof(*fmt));
	fmt->kind = 'c';
	fmt->header = false;
	fmt->nul = 'r';
	fmt->encoding = GetDatabaseEncoding();
	*pattern = NULL;
	foreach(lc, options)
	{
		DefElem    *def = lfirst(lc);
		char	   *value = defGetString(def);

		if (strcmp(def->defname, "path") == 0)
			*pattern = value;
		else if (strcmp(def->defname, "format") == 0)
		{
			if (strcmp(value, "csv") == 0)
				fmt->kind = 'c';
			else if (strcmp(value, "text") == 0)
				fmt->kind = 't';
			else if (strcmp(value, "lines") == 0)
				fmt->kind = 'l';
			else
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("format \"%s\" of a file source is not known", value),
						 errhint("Use csv, text or lines.")));
		}
		else if (strcmp(def->defname, "header") == 0)
			fmt->header = defGetBoolean(def);
		else if (strcmp(def->defname, "delimiter") == 0)
			delim = value;
		else if (strcmp(def->defname, "quote") == 0)
			quote = value;
		else if (strcmp(def->defname, "escape") == 0)
			escape = value;
		else if (strcmp(def->defname, "null") == 0)
			null_str = value;
		else if (strcmp(def->defname, "line_end") == 0)
			line_end = value;
		else if (strcmp(def->defname, "encoding") == 0)
		{
			/* 7-bit ASCII, checked (SQL_ASCII is any byte, unchecked) */
			fmt->ascii = pg_strcasecmp(value, "ascii") == 0 || pg_strcasecmp(value, "us-ascii") == 0;
			fmt->encoding = fmt->ascii ? PG_SQL_ASCII : pg_char_to_encoding(value);
			if (fmt->encoding < 0 || !PG_VALID_ENCODING(fmt->encoding))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("encoding \"%s\" of a file source is not known", value)));
		}
		else if (strcmp(def->defname, "trim_blanks") == 0)
			fmt->trim = defGetBoolean(def);
		else if (strcmp(def->defname, "strict_quotes") == 0)
			fmt->strict = defGetBoolean(def);
		else if (strcmp(def->defname, "ragged_lines") == 0)
			fmt->ragged = defGetBoolean(def);
		else if (strcmp(def->defname, "nul") == 0)
		{
			if (strcmp(value, "reject") == 0)
				fmt->nul = 'r';
			else if (strcmp(value, "null") == 0)
				fmt->nul = 'n';
			else if (strcmp(value, "strip") == 0)
				fmt->nul = 's';
			else
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("nul \"%s\" of a file source is not known", value),
						 errhint("Use reject (a line with a NUL byte is rejected), null (a field of NUL bytes only is NULL) or strip (NUL bytes are removed).")));
		}
		else if (strcmp(def->defname, "skip_lines") == 0)
		{
			char	   *end;
			long		n = strtol(value, &end, 10);

			if (*value == '\0' || *end != '\0' || n < 0 || n > PG_INT32_MAX)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("skip_lines of a file source must be between 0 and %d", PG_INT32_MAX)));
			fmt->skip_lines = (int) n;
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("invalid option \"%s\" for a file source", def->defname),
					 errhint("Valid options: path, format, header, delimiter, quote, escape, null, encoding, skip_lines, trim_blanks, strict_quotes, nul, ragged_lines, line_end.")));
	}
	token_option("delimiter", delim ? delim : (fmt->kind == 'c' ? "," : "\t"), false, &fmt->delim_t);
	token_option("quote", quote ? quote : "\"", false, &fmt->quote_t);
	if (escape)
		token_option("escape", escape, false, &fmt->escape_t);
	else if (fmt->kind == 'c')
		fmt->escape_t = fmt->quote_t;
	else
		token_option("escape", "\\", false, &fmt->escape_t);
	if (line_end && strcmp(line_end, "\n") != 0)
		token_option("line_end", line_end, true, &eol);
	/* fields are cut from the converted record, but the delimiter must be in the files too */
	token_in_files("delimiter", &fmt->delim_t, fmt->encoding, &delim_in_files);
	token_in_files("quote", &fmt->quote_t, fmt->encoding, &fmt->quote_f);
	token_in_files("escape", &fmt->escape_t, fmt->encoding, &fmt->escape_f);
	token_in_files("line_end", &eol, fmt->encoding, &fmt->eol_f);
	fmt->token_start[(unsigned char) (fmt->eol_f.len > 0 ? fmt->eol_f.s[0] : '\n')] = true;
	if (fmt->kind == 'c')
	{
		fmt->token_start[(unsigned char) fmt->quote_f.s[0]] = true;
		fmt->token_start[(unsigned char) fmt->escape_f.s[0]] = true;
	}
	fmt->delim = fmt->delim_t.s[0];
	fmt->quote = fmt->quote_t.s[0];
	fmt->escape = fmt->escape_t.s[0];
	/* the fast paths take one ASCII byte each (the same in the files and the database) */
	fmt->general = fmt->eol_f.len > 0 || fmt->delim_t.len > 1 || IS_HIGHBIT_SET(fmt->delim);
	if (fmt->kind == 'c')
		fmt->general |= fmt->quote_t.len > 1 || fmt->escape_t.len > 1 ||
			IS_HIGHBIT_SET(fmt->quote) || IS_HIGHBIT_SET(fmt->escape);
	fmt->lookahead = Max(Max(fmt->eol_f.len, fmt->quote_f.len),
						 fmt->escape_f.len + Max(fmt->quote_f.len, fmt->escape_f.len));
	fmt->null_str = null_str ? null_str : (fmt->kind == 'c' ? "" : "\\N");
	fmt->null_len = strlen(fmt->null_str);
	if (fmt->kind == 'c' && token_is_prefix(&fmt->delim_t, &fmt->quote_t))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("delimiter and quote of a file source must differ, neither the start of the other")));
	if (fmt->eol_f.len > 0 && (token_is_prefix(&fmt->eol_f, &fmt->delim_t) ||
							   (fmt->kind == 'c' && token_is_prefix(&fmt->eol_f, &fmt->quote_f))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("line_end of a file source must differ from its delimiter and quote, neither the start of the other")));
	if (fmt->general && fmt->nul != 'r')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("nul %s needs a delimiter, quote and escape of one ASCII character each and no line_end",
						fmt->nul == 'n' ? "null" : "strip")));
	if ((fmt->trim || fmt->strict) && fmt->kind != 'c')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s applies to format csv only", fmt->trim ? "trim_blanks" : "strict_quotes"),
				 errhint("For text or lines, trim fields in their mappings: btrim(s.<field>).")));
	if (fmt->ragged && fmt->kind == 'l')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ragged_lines applies to formats csv and text only"),
				 errhint("Format lines reads one field per line, whatever it holds.")));
	/* NUL-only fields become the null string in the file's bytes: it must read the same there */
	if (fmt->nul == 'n' && !pg_is_ascii(fmt->null_str))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("nul null needs a null string of ASCII characters"),
				 errdetail("Got \"%s\".", fmt->null_str)));
	if (fmt->kind == 'l')
		fmt->header = false;
}

void
migrate_file_check_privilege(void)
{
	if (!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to read server files as role \"%s\"",
						GetUserNameFromId(GetUserId(), false)),
				 errdetail("A file source reads files of the database server, as COPY FROM a file does."),
				 errhint("A superuser can GRANT pg_read_server_files TO the plan's owner.")));
}

/* The files of a path or glob, in name order; an error when there are none. */
char **
migrate_file_expand(const char *pattern, int *npaths)
{
	glob_t		g;
	int			ret;
	char	  **paths;

	ret = glob(pattern, GLOB_ERR, NULL, &g);
	if (ret == GLOB_NOMATCH || (ret == 0 && g.gl_pathc == 0))
	{
		globfree(&g);
		ereport(ERROR,
				(errcode_for_file_access(),
				 errcode(ERRCODE_UNDEFINED_FILE),
				 errmsg("no file matches \"%s\"", pattern),
				 errhint("The path is read on the database server, by the server's operating system user.")));
	}
	if (ret != 0)
	{
		globfree(&g);
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read the files of \"%s\": %m", pattern)));
	}
	if (g.gl_pathc > FILE_MAX_FILES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("\"%s\" matches %zu files, more than %d", pattern, g.gl_pathc, FILE_MAX_FILES)));
	*npaths = (int) g.gl_pathc;
	paths = palloc(sizeof(char *) * g.gl_pathc);
	for (size_t i = 0; i < g.gl_pathc; i++)
		paths[i] = pstrdup(g.gl_pathv[i]);	/* glob sorts them */
	globfree(&g);
	return paths;
}

/* ---------------------------------------------------------------------
 * The reader
 * ---------------------------------------------------------------------
 */

void
migrate_file_open(FileReader *r, const FileFormat *fmt, const char *path)
{
	memset(r, 0, sizeof(*r));
	r->fmt = fmt;
	r->path = path;
	r->fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (r->fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\" for reading: %m", path)));
	r->buf = palloc(FILE_BUF_SIZE);
	r->bufcap = FILE_BUF_SIZE;
	initStringInfo(&r->spare);
	r->line = 1;
	r->db_encoding = GetDatabaseEncoding();
	if (fmt->encoding != r->db_encoding && r->db_encoding != PG_SQL_ASCII &&
		fmt->encoding != PG_SQL_ASCII)
	{
		r->conv_proc = FindDefaultConversionProc(fmt->encoding, r->db_encoding);
		if (!OidIsValid(r->conv_proc))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FUNCTION),
					 errmsg("no conversion from encoding \"%s\" to \"%s\"",
							pg_encoding_to_char(fmt->encoding), pg_encoding_to_char(r->db_encoding))));
	}
	initStringInfo(&r->raw);
	initStringInfo(&r->nulfree);
	initStringInfo(&r->text);
	initStringInfo(&r->fieldbuf);
	r->maxfields = 16;
	r->fstart = palloc(sizeof(int) * r->maxfields);
}

void
migrate_file_close(FileReader *r)
{
	if (r->fd >= 0 && r->buf)
		CloseTransientFile(r->fd);
	r->fd = -1;
}

void
migrate_file_seek(FileReader *r, int64 offset, int64 line)
{
	if (lseek(r->fd, (off_t) offset, SEEK_SET) < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not seek in file \"%s\": %m", r->path)));
	r->buflen = r->bufpos = 0;
	r->eof = false;
	r->offset = offset;
	r->line = line;
}

/*
 * Read the record last read again from its second line on (it was cut
 * back to its first, which ends at raw[first]): from memory, its bytes
 * after the first line end (with its own line end) before what the buffer
 * still holds, not from the file again, which would read each stray
 * quote's lines twice.
 */
static void
reader_unread_rest(FileReader *r, int first)
{
	StringInfo	next = &r->spare;
	char	   *old_buf = r->buf;
	int			old_cap = r->bufcap;
	int			eol_len = r->fmt->eol_f.len > 0 ? r->fmt->eol_f.len : 1;

	resetStringInfo(next);
	appendBinaryStringInfo(next, r->raw.data + first + eol_len, r->raw.len - first - eol_len);
	if (r->rec_cr)
		appendStringInfoChar(next, '\r');
	if (r->rec_nl && r->fmt->eol_f.len > 0)
		appendBinaryStringInfo(next, r->fmt->eol_f.s, eol_len);
	else if (r->rec_nl)
		appendStringInfoChar(next, '\n');
	appendBinaryStringInfo(next, r->buf + r->bufpos, r->buflen - r->bufpos);
	enlargeStringInfo(next, FILE_BUF_SIZE);
	r->buf = next->data;
	r->bufcap = next->maxlen;
	r->buflen = next->len;
	r->bufpos = 0;
	next->data = old_buf;
	next->maxlen = old_cap;
	next->len = 0;
	r->offset = r->rec_start + first + eol_len;
	r->line = r->rec_line + 1;
}

/* Refill the buffer; false at the end of the file. */
static bool
reader_fill(FileReader *r)
{
	ssize_t		n;

	if (r->eof)
		return false;
	CHECK_FOR_INTERRUPTS();
	n = read(r->fd, r->buf, FILE_BUF_SIZE);
	if (n < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read file \"%s\": %m", r->path)));
	r->buflen = (int) n;
	r->bufpos = 0;
	if (n == 0)
		r->eof = true;
	return n > 0;
}

/* Whether s[i, n) starts with token t (i < n). */
static inline bool
token_at(const char *s, int i, int n, const FileToken *t)
{
	return t->len > 0 && s[i] == t->s[0] &&
		(t->len == 1 || (i + t->len <= n && memcmp(s + i + 1, t->s + 1, t->len - 1) == 0));
}

/* The first place in [s, end) where token t is, or NULL. */
static inline const char *
token_find(const char *s, const char *end, const FileToken *t)
{
	while (s < end && (s = memchr(s, t->s[0], end - s)) != NULL)
	{
		if (t->len == 1 || (end - s >= t->len && memcmp(s + 1, t->s + 1, t->len - 1) == 0))
			return s;
		s++;
	}
	return NULL;
}

/*
 * Refill the buffer keeping its unread bytes (fewer than a token match
 * needs), for the general reader; false when nothing is left.
 */
static bool
reader_top_up(FileReader *r)
{
	int			rest = r->buflen - r->bufpos;
	ssize_t		n;

	if (r->eof)
		return rest > 0;
	memmove(r->buf, r->buf + r->bufpos, rest);
	r->bufpos = 0;
	r->buflen = rest;
	CHECK_FOR_INTERRUPTS();
	n = read(r->fd, r->buf + rest, r->bufcap - rest);
	if (n < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read file \"%s\": %m", r->path)));
	if (n == 0)
		r->eof = true;
	r->buflen += (int) n;
	return r->buflen > 0;
}

/*
 * read_record() for a general format (fmt->general): the record ends at
 * the line end (fmt->eol_f, else \n) outside quotes, tokens of several
 * bytes are matched whole, with the buffer topped up so that none is
 * split between two reads.  A "line" is then what the line end ends.
 */
static bool
read_record_general(FileReader *r)
{
	const FileFormat *fmt = r->fmt;
	bool		csv = fmt->kind == 'c';
	FileToken	newline = {"\n", 1};
	const FileToken *eol = fmt->eol_f.len > 0 ? &fmt->eol_f : &newline;
	/* an escape other than the quote makes the quote or escape after it text */
	bool		escapes = fmt->escape_f.len > 0 && !token_is_prefix(&fmt->escape_f, &fmt->quote_f);
	bool		in_quote = false;
	bool		any = false;

	for (;;)
	{
		const char *b;
		int			i,
					n,
					limit;
		bool		found = false;

		if (r->buflen - r->bufpos < fmt->lookahead && !r->eof)
			(void) reader_top_up(r);
		if (r->bufpos >= r->buflen)
		{
			if (!any)
				return false;
			r->rec_open_quote = in_quote;
			r->line += r->rec_lines - 1;
			return true;
		}
		/* with line_end given, line breaks before a record are layout, not data */
		if (r->raw.len == 0 && fmt->eol_f.len > 0 && !in_quote)
		{
			while (r->bufpos < r->buflen &&
				   (r->buf[r->bufpos] == '\n' || r->buf[r->bufpos] == '\r'))
				r->bufpos++, r->offset++;
			r->rec_start = r->offset;
			if (r->bufpos >= r->buflen)
				continue;
		}
		any = true;
		b = r->buf;
		n = r->buflen;
		/* short of the end, leave room for a token's whole match */
		limit = r->eof ? n : n - (fmt->lookahead - 1);
		for (i = r->bufpos; i < limit;)
		{
			/* bytes that start no token: skipped a run at a time */
			if (!in_quote)
			{
				/* outside quotes only the line end and a quote matter */
				const char *e = memchr(b + i, eol->s[0], limit - i);
				const char *stop = e ? e : b + limit;
				const char *q = csv ? memchr(b + i, fmt->quote_f.s[0], stop - (b + i)) : NULL;

				i = (q ? q : stop) - b;
				if (i >= limit)
					break;
			}
			else if (!fmt->token_start[(unsigned char) b[i]])
			{
				i++;
				while (i < limit && !fmt->token_start[(unsigned char) b[i]])
					i++;
				continue;
			}
			if (csv && in_quote)
			{
				if (escapes && token_at(b, i, n, &fmt->escape_f))
				{
					int			j = i + fmt->escape_f.len;

					if (j < n && token_at(b, j, n, &fmt->quote_f))
						j += fmt->quote_f.len;
					else if (j < n && token_at(b, j, n, &fmt->escape_f))
						j += fmt->escape_f.len;
					i = j;
				}
				else if (token_at(b, i, n, &fmt->quote_f))
				{
					in_quote = false;
					i += fmt->quote_f.len;
				}
				else if (token_at(b, i, n, eol))
				{
					r->rec_lines++;
					i += eol->len;
				}
				else
					i++;
			}
			else if (csv && token_at(b, i, n, &fmt->quote_f))
			{
				in_quote = true;
				i += fmt->quote_f.len;
			}
			else if (token_at(b, i, n, eol))
			{
				found = true;
				break;
			}
			else
				i++;
		}
		if (i > n)
			i = n;				/* a token at the file's very end */
		appendBinaryStringInfo(&r->raw, b + r->bufpos, i - r->bufpos);
		r->offset += i - r->bufpos;
		r->bufpos = i;
		if (found)
		{
			r->bufpos += eol->len;
			r->offset += eol->len;
			r->line += r->rec_lines;
			r->rec_nl = true;
			/* CRLF line ends, as read_record's, unless the line end is given */
			if (fmt->eol_f.len == 0 && r->raw.len > 0 && r->raw.data[r->raw.len - 1] == '\r')
			{
				r->raw.data[--r->raw.len] = '\0';
				r->rec_cr = true;
			}
			return true;
		}
	}
}

/*
 * Read the bytes of the next record into r->raw (without its line end);
 * false at the end of the file.  A CSV record ends at a line end outside
 * quotes.
 */
static bool
read_record(FileReader *r)
{
	bool		csv = r->fmt->kind == 'c';
	char		quote = r->fmt->quote;
	char		escape = r->fmt->escape;
	bool		in_quote = false;
	bool		escaped = false;
	bool		any = false;

	resetStringInfo(&r->raw);
	r->rec_start = r->offset;
	r->rec_line = r->line;
	r->rec_lines = 1;
	r->rec_open_quote = false;
	r->rec_cr = false;
	r->rec_nl = false;
	r->rec_no_quote = false;
	if (r->fmt->general)
		return read_record_general(r);
	for (;;)
	{
		char	   *p,
				   *end,
				   *nl = NULL;

		if (r->bufpos >= r->buflen && !reader_fill(r))
		{
			if (!any)
				return false;
			/* the last line has no line end */
			r->rec_open_quote = in_quote;
			r->line += r->rec_lines - 1;
			break;
		}
		any = true;
		p = r->buf + r->bufpos;
		end = r->buf + r->buflen;
		if (!csv)
			nl = memchr(p, '\n', end - p);
		else
		{
			char	   *q = p;

			/* most lines hold no quote: the line end, found as text's is */
			if (!in_quote)
			{
				nl = memchr(p, '\n', end - p);
				if (nl && memchr(p, quote, nl - p) != NULL)
					nl = NULL;
				if (nl)
				{
					q = end;	/* (no loop) */
					r->rec_no_quote = r->raw.len == 0;	/* all of it seen so */
				}
			}
			for (; q < end; q++)
			{
				char		c = *q;

				/* inside quotes only the quote matters (no escape of its own) */
				if (in_quote && escape == quote)
				{
					char	   *close = memchr(q, quote, end - q);
					char	   *stop = close ? close : end;

					for (; q < stop; q++)
						r->rec_lines += *q == '\n';
					if (close == NULL)
						break;
					in_quote = false;
					continue;
				}
				if (in_quote)
				{
					if (escaped)
						escaped = false;
					else if (c == escape && escape != quote)
						escaped = true;
					else if (c == quote)
						in_quote = false;
					else if (c == '\n')
						r->rec_lines++;
				}
				else if (c == quote)
					in_quote = true;
				else if (c == '\n')
				{
					nl = q;
					break;
				}
			}
		}
		if (nl)
		{
			int			n = nl - p;

			appendBinaryStringInfo(&r->raw, p, n);
			r->bufpos += n + 1;
			r->offset += n + 1;
			r->line += r->rec_lines;
			r->rec_nl = true;
			break;
		}
		appendBinaryStringInfo(&r->raw, p, end - p);
		r->offset += end - p;
		r->bufpos = r->buflen;
	}
	/* CRLF line ends */
	if (r->raw.len > 0 && r->raw.data[r->raw.len - 1] == '\r')
	{
		r->raw.data[--r->raw.len] = '\0';
		r->rec_cr = true;
	}
	return true;
}

/*
 * A field of the record being cut, built in fieldbuf as a text datum (an
 * aligned 4-byte varlena header, the bytes, a NUL so that it reads as a C
 * string too): the scan hands it to the tuple as is, no copy per field.
 * fstart is the header's offset (FILE_FIELD_TEXT gives the string).
 */
static void
field_begin(FileReader *r, bool null)
{
	if (r->nfields == r->maxfields)
	{
		r->maxfields *= 2;
		r->fstart = repalloc(r->fstart, sizeof(int) * r->maxfields);
	}
	if (null)
	{
		r->fstart[r->nfields++] = -1;
		return;
	}
	{
		int			pad = (int) (INTALIGN(r->fieldbuf.len) - r->fieldbuf.len);

		enlargeStringInfo(&r->fieldbuf, pad + VARHDRSZ);
		r->fieldbuf.len += pad;
		r->fstart[r->nfields++] = r->fieldbuf.len;
		r->fieldbuf.len += VARHDRSZ;	/* the header: set by field_end */
	}
}

static void
field_end(FileReader *r)
{
	int			start = r->fstart[r->nfields - 1];

	SET_VARSIZE(r->fieldbuf.data + start, r->fieldbuf.len - start);
	appendStringInfoChar(&r->fieldbuf, '\0');
}

/*
 * The record's bytes with its NUL bytes dealt with as fmt->nul says, in
 * r->nulfree: removed ('s'), or ('n') a field of NUL bytes only replaced by
 * the null string (ASCII, so the same bytes in any server encoding), other
 * NUL bytes left for record_to_text to refuse.  Fields are cut here as the
 * reader cuts them (quotes and escapes skipped over), in the file's bytes,
 * as read_record finds line ends and quotes.
 */
static void
record_strip_nul(FileReader *r)
{
	const FileFormat *fmt = r->fmt;
	const char *s = r->raw.data;
	int			n = r->raw.len;
	int			start = 0;
	bool		in_quote = false;

	resetStringInfo(&r->nulfree);
	if (fmt->nul == 's')
	{
		for (int i = 0; i < n; i++)
			if (s[i] != '\0')
				appendStringInfoChar(&r->nulfree, s[i]);
		return;
	}
	for (int i = 0; i <= n; i++)
	{
		int			k = start;

		if (i < n)
		{
			char		c = s[i];

			/* an escaped byte is never a delimiter or a quote */
			if (i + 1 < n && ((fmt->kind == 't' && c == '\\') ||
							  (fmt->kind == 'c' && in_quote && c == fmt->escape && fmt->escape != fmt->quote)))
			{
				i++;
				continue;
			}
			if (fmt->kind == 'c' && c == fmt->quote)
				in_quote = !in_quote;
			if (fmt->kind == 'l' || in_quote || c != fmt->delim)
				continue;
		}
		/* s[start, i) is a field: the null string if it is NUL bytes only */
		while (k < i && s[k] == '\0')
			k++;
		if (k == i && i > start)
			appendStringInfoString(&r->nulfree, fmt->null_str);
		else
			appendBinaryStringInfo(&r->nulfree, s + start, i - start);
		if (i < n)
			appendStringInfoChar(&r->nulfree, s[i]);
		start = i + 1;
	}
}

/* The record's bytes in the database's encoding (r->tdata), or an error. */
static bool
record_to_text(FileReader *r)
{
	const char *s = r->raw.data;
	int			len = r->raw.len;

	if (r->fmt->nul != 'r' && memchr(s, '\0', len) != NULL)
	{
		record_strip_nul(r);
		s = r->nulfree.data;
		len = r->nulfree.len;
	}

	if (r->fmt->ascii)
		for (int i = 0; i < len; i++)
			if (IS_HIGHBIT_SET(s[i]))
			{
				r->error = psprintf("invalid byte sequence for encoding \"ASCII\": 0x%02x",
									(unsigned char) s[i]);
				return false;
			}
	resetStringInfo(&r->text);
	if (!OidIsValid(r->conv_proc))
	{
		int			enc = r->db_encoding == PG_SQL_ASCII ? r->fmt->encoding : r->db_encoding;

		if (!pg_verify_mbstr(enc, s, len, true))
		{
			r->error = memchr(s, '\0', len) ? "line contains a NUL byte" :
				psprintf("invalid byte sequence for encoding \"%s\"", pg_encoding_to_char(enc));
			return false;
		}
		r->tdata = s;			/* no copy: cut the fields from raw */
		r->tlen = len;
		return true;
	}
	if (!pg_verify_mbstr(r->fmt->encoding, s, len, true))
	{
		r->error = memchr(s, '\0', len) ? "line contains a NUL byte" :
			psprintf("invalid byte sequence for encoding \"%s\"", pg_encoding_to_char(r->fmt->encoding));
		return false;
	}
	enlargeStringInfo(&r->text, (len + 1) * MAX_CONVERSION_GROWTH);
	if (pg_do_encoding_conversion_buf(r->conv_proc, r->fmt->encoding, r->db_encoding,
									  (unsigned char *) s, len,
									  (unsigned char *) r->text.data,
									  r->text.maxlen, true) < len)
	{
		r->error = psprintf("character with no equivalent in encoding \"%s\"",
							pg_encoding_to_char(r->db_encoding));
		return false;
	}
	r->text.len = strlen(r->text.data);
	r->tdata = r->text.data;
	r->tlen = r->text.len;
	return true;
}

/* a blank that trim drops: a space or a tab, unless it is the delimiter */
#define CSV_BLANK(fmt, c)	(((c) == ' ' || (c) == '\t') && (c) != (fmt)->delim)

/*
 * Cut a CSV record into fields, as COPY (FORMAT csv) does: a quote opens a
 * quoted stretch anywhere in a field, text before and after it belongs to
 * the field, and a field with no quote that equals the null string is
 * NULL.  A record of several lines is cut strictly (a quote only at a
 * field's start, nothing but a delimiter after its closing quote): a stray
 * quote that swallowed the lines after it then fails here, and
 * migrate_file_next() cuts the record back to its first line, instead of
 * loading those lines as one field.  Option strict_quotes cuts every record so;
 * option trim_blanks drops the blanks around a field's unquoted text (those
 * inside quotes are kept) before the null string is looked for.
 */
static bool
cut_csv(FileReader *r)
{
	const FileFormat *fmt = r->fmt;
	const char *s = r->tdata;
	int			n = r->tlen;
	int			i = 0;
	bool		strict = r->rec_lines > 1 || fmt->strict;
	bool		trim = fmt->trim;
	const FileToken *delim = &fmt->delim_t;
	const FileToken *quote = &fmt->quote_t;
	const FileToken *escape = &fmt->escape_t;

	/* a record without a quote: its fields are what the delimiters cut */
	if (fmt->general ? memchr(s, quote->s[0], n) == NULL :
		(r->rec_no_quote && r->tdata == r->raw.data))
	{
		for (;;)
		{
			const char *d = fmt->general ? token_find(s + i, s + n, delim) :
				memchr(s + i, fmt->delim, n - i);
			int			len = (d ? (int) (d - s) : n) - i;
			int			from = i,
						to = i + len;

			if (trim)
			{
				while (from < to && CSV_BLANK(fmt, s[from]))
					from++;
				while (to > from && CSV_BLANK(fmt, s[to - 1]))
					to--;
			}
			if (to - from == fmt->null_len && memcmp(s + from, fmt->null_str, to - from) == 0)
				field_begin(r, true);
			else
			{
				field_begin(r, false);
				appendBinaryStringInfo(&r->fieldbuf, s + from, to - from);
				field_end(r);
			}
			if (d == NULL)
				return true;
			i += len + delim->len;
		}
	}
	for (;;)
	{
		int			content;	/* where the field's text starts */
		int			text_start; /* in fieldbuf */
		int			kept;		/* fieldbuf up to the last closing quote */
		bool		saw_quote = false;

		field_begin(r, false);
		text_start = kept = r->fieldbuf.len;
		if (trim)
			while (i < n && CSV_BLANK(fmt, s[i]))
				i++;
		content = i;
		for (;;)
		{
			/* outside quotes: up to a delimiter, the end, or a quote */
			int			j = i;

			while (j < n && !token_at(s, j, n, delim) && !token_at(s, j, n, quote))
				j++;
			appendBinaryStringInfo(&r->fieldbuf, s + i, j - i);
			i = j;
			if (i >= n || token_at(s, i, n, delim))
				break;
			if (strict && (saw_quote || i > content))
			{
				r->error = saw_quote ? "unexpected character after a closing quote" :
					"quote in the middle of an unquoted CSV field";
				return false;
			}
			/* a quoted stretch */
			saw_quote = true;
			i += quote->len;
			for (;;)
			{
				j = i;
				while (j < n && !token_at(s, j, n, quote) && !token_at(s, j, n, escape))
					j++;
				appendBinaryStringInfo(&r->fieldbuf, s + i, j - i);
				i = j;
				if (i >= n)
				{
					r->error = "unterminated CSV quoted field";
					return false;
				}
				if (token_at(s, i, n, escape) && i + escape->len < n &&
					(token_at(s, i + escape->len, n, quote) || token_at(s, i + escape->len, n, escape)))
				{
					const FileToken *t = token_at(s, i + escape->len, n, quote) ? quote : escape;

					appendBinaryStringInfo(&r->fieldbuf, t->s, t->len);
					i += escape->len + t->len;
				}
				else if (token_at(s, i, n, quote))
				{
					i += quote->len;
					break;
				}
				else if (token_at(s, i, n, escape))
				{
					appendBinaryStringInfo(&r->fieldbuf, escape->s, escape->len);
					i += escape->len;
				}
				else
					appendStringInfoChar(&r->fieldbuf, s[i++]);
			}
			kept = r->fieldbuf.len;
			if (strict)
			{
				/* only blanks (with trim) before the delimiter */
				j = i;
				if (trim)
					while (j < n && CSV_BLANK(fmt, s[j]))
						j++;
				if (j < n && !token_at(s, j, n, delim))
				{
					r->error = "unexpected character after a closing quote";
					return false;
				}
			}
		}
		if (trim)
			while (r->fieldbuf.len > kept && CSV_BLANK(fmt, r->fieldbuf.data[r->fieldbuf.len - 1]))
				r->fieldbuf.len--;
		if (!saw_quote && r->fieldbuf.len - text_start == fmt->null_len &&
			memcmp(r->fieldbuf.data + text_start, fmt->null_str, fmt->null_len) == 0)
		{
			/* the null string, unquoted: NULL (its bytes go back) */
			r->fieldbuf.len = r->fstart[r->nfields - 1];
			r->fieldbuf.data[r->fieldbuf.len] = '\0';
			r->fstart[r->nfields - 1] = -1;
		}
		else
			field_end(r);
		if (i >= n)
			return true;
		i += delim->len;		/* the delimiter: another field follows */
	}
}

/* Cut a COPY text record into fields, undoing its backslash escapes. */
static bool
cut_text(FileReader *r)
{
	const FileFormat *fmt = r->fmt;
	const char *s = r->tdata;
	int			n = r->tlen;
	int			i = 0;

	for (;;)
	{
		int			start = i;

		while (i < n && !token_at(s, i, n, &fmt->delim_t))
		{
			if (s[i] == '\\' && i + 1 < n)
				i++;
			i++;
		}
		if (i - start == fmt->null_len && memcmp(s + start, fmt->null_str, fmt->null_len) == 0)
			field_begin(r, true);
		else if (memchr(s + start, '\\', i - start) == NULL)
		{
			/* no escape in it: the bytes as they are */
			field_begin(r, false);
			appendBinaryStringInfo(&r->fieldbuf, s + start, i - start);
			field_end(r);
		}
		else
		{
			field_begin(r, false);
			for (int j = start; j < i; j++)
			{
				char		c = s[j];

				if (c == '\\' && j + 1 < i)
				{
					c = s[++j];
					switch (c)
					{
						case 'b':
							c = '\b';
							break;
						case 'f':
							c = '\f';
							break;
						case 'n':
							c = '\n';
							break;
						case 'r':
							c = '\r';
							break;
						case 't':
							c = '\t';
							break;
						case 'v':
							c = '\v';
							break;
						case 'x':
							if (j + 1 < i && isxdigit((unsigned char) s[j + 1]))
							{
								int			v = 0;

								for (int k = 0; k < 2 && j + 1 < i && isxdigit((unsigned char) s[j + 1]); k++)
								{
									char		h = s[++j];

									v = v * 16 + (isdigit((unsigned char) h) ? h - '0' : (tolower((unsigned char) h) - 'a' + 10));
								}
								c = (char) v;
							}
							break;
						default:
							if (c >= '0' && c <= '7')
							{
								int			v = c - '0';

								for (int k = 0; k < 2 && j + 1 < i && s[j + 1] >= '0' && s[j + 1] <= '7'; k++)
									v = v * 8 + (s[++j] - '0');
								c = (char) v;
							}
							break;
					}
				}
				if (c == '\0')
				{
					r->error = "line contains an escaped NUL byte";
					return false;
				}
				appendStringInfoChar(&r->fieldbuf, c);
			}
			field_end(r);
		}
		if (i >= n)
			return true;
		i += fmt->delim_t.len;
	}
}

/* Cut the record last read into fields; sets r->error when it does not parse. */
static void
parse_record(FileReader *r)
{
	r->nfields = 0;
	r->error = NULL;
	resetStringInfo(&r->fieldbuf);
	if (r->rec_open_quote)
	{
		r->error = "unterminated CSV quoted field";
		return;
	}
	if (!record_to_text(r))
		return;
	switch (r->fmt->kind)
	{
		case 'c':
			(void) cut_csv(r);
			break;
		case 't':
			(void) cut_text(r);
			break;
		default:
			field_begin(r, false);
			appendBinaryStringInfo(&r->fieldbuf, r->tdata, r->tlen);
			field_end(r);
			break;
	}
}

/* Where the record's first line ends in raw (raw.len if it has one line). */
static int
first_line_end(FileReader *r)
{
	const FileToken *eol = &r->fmt->eol_f;

	if (eol->len == 0)
	{
		char	   *nl = memchr(r->raw.data, '\n', r->raw.len);

		return nl ? (int) (nl - r->raw.data) : r->raw.len;
	}
	for (int i = 0; i < r->raw.len; i++)
		if (token_at(r->raw.data, i, r->raw.len, eol))
			return i;
	return r->raw.len;
}

/*
 * A record that parsed, held against the ncols fields expected (none: 0):
 * another number of fields is its error, unless the format takes ragged
 * lines, whose missing trailing fields are NULL and extra ones dropped.
 */
static void
fields_against_columns(FileReader *r, int ncols)
{
	if (r->error != NULL || ncols <= 0 || r->nfields == ncols)
		return;
	/* a record of several lines may be a stray quote's: never cut to fit */
	if (!r->fmt->ragged || r->rec_lines > 1)
		r->error = r->nfields > ncols ? "extra data after last expected column" :
			"missing data for a column";
	else if (r->nfields > ncols)
		r->nfields = ncols;
	else
		while (r->nfields < ncols)
			field_begin(r, true);
}

/*
 * The next record that is not blank, cut into fields against ncols
 * expected fields.  A record of several lines that does not parse is cut
 * back to its first line (the error), and reading goes on at its second.
 * False at the end of the file.  With skip, records are only delimited
 * (a record of one line is not cut into fields, r->error is not set): the
 * same boundaries, found faster, to reach a place in the file.
 */
bool
migrate_file_next(FileReader *r, int ncols, bool skip)
{
	for (;;)
	{
		if (!read_record(r))
			return false;
		if (r->raw.len == 0 && r->rec_lines == 1)
			continue;			/* a blank line */
		/* skipping: only a record of several lines is cut, to see where it ends */
		if (skip && r->rec_lines == 1)
			return true;
		parse_record(r);
		fields_against_columns(r, ncols);
		if (r->error && r->rec_lines > 1)
		{
			int			first = first_line_end(r);

			reader_unread_rest(r, first);
			r->raw.len = first;
			r->raw.data[first] = '\0';
			if (first > 0 && r->raw.data[first - 1] == '\r' && r->fmt->eol_f.len == 0)
				r->raw.data[--r->raw.len] = '\0';
			r->rec_lines = 1;
			/* the first line's own error (an unterminated quote, say) */
			{
				const char *merged = r->error;

				r->rec_open_quote = false;
				parse_record(r);
				fields_against_columns(r, ncols);
				if (r->error == NULL)
					r->error = merged;
			}
		}
		return true;
	}
}


/* The raw line as valid text of the database's encoding (bad bytes as \xNN). */
char *
migrate_file_raw_text(FileReader *r)
{
	StringInfoData out;
	const char *s = r->raw.data;
	int			len = r->raw.len;
	int			enc = r->fmt->encoding;

	initStringInfo(&out);
	while (len > 0)
	{
		int			l = pg_encoding_verifymbchar(enc, s, len);

		if (l <= 0 || *s == '\0')
		{
			appendStringInfo(&out, "\\x%02x", (unsigned char) *s);
			s++, len--;
			continue;
		}
		if (OidIsValid(r->conv_proc) && l > 1)
		{
			char	   *c = pg_any_to_server(s, l, enc);

			appendStringInfoString(&out, c);
		}
		else
			appendBinaryStringInfo(&out, s, l);
		s += l, len -= l;
	}
	return out.data;
}

/* Skip one line of a given line end (not quote-aware, as skip_lines is not); false at the end. */
static bool
skip_general_line(FileReader *r)
{
	const FileToken *eol = &r->fmt->eol_f;

	for (;;)
	{
		int			limit;

		if (r->buflen - r->bufpos < eol->len && !r->eof)
			(void) reader_top_up(r);
		if (r->bufpos >= r->buflen)
			return false;
		limit = r->eof ? r->buflen : r->buflen - (eol->len - 1);
		for (int i = r->bufpos; i < limit; i++)
			if (token_at(r->buf, i, r->buflen, eol))
			{
				r->offset += i + eol->len - r->bufpos;
				r->bufpos = i + eol->len;
				r->line++;
				return true;
			}
		r->offset += limit - r->bufpos;
		r->bufpos = limit;
		if (r->eof)
			return false;
	}
}

/*
 * Skip a file's first lines and its header; with want_header, return the
 * header's fields (NULL when the file has none).  Leaves r at the first
 * data record.
 */
List *
migrate_file_skip_head(FileReader *r, bool want_header)
{
	List	   *names = NIL;

	for (int i = 0; i < r->fmt->skip_lines; i++)
	{
		for (;;)
		{
			char	   *p;

			if (r->fmt->eol_f.len > 0)
			{
				if (!skip_general_line(r))
					return NIL;
				break;
			}
			if (r->bufpos >= r->buflen && !reader_fill(r))
				return NIL;
			p = memchr(r->buf + r->bufpos, '\n', r->buflen - r->bufpos);
			if (p)
			{
				int			n = p - (r->buf + r->bufpos) + 1;

				r->bufpos += n;
				r->offset += n;
				r->line++;
				break;
			}
			r->offset += r->buflen - r->bufpos;
			r->bufpos = r->buflen;
		}
	}
	if (!r->fmt->header)
		return NIL;
	if (!migrate_file_next(r, 0, false))
		return NIL;
	if (r->error)
		ereport(ERROR,
				(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
				 errmsg("the header of file \"%s\" (line " INT64_FORMAT ") does not parse: %s",
						r->path, r->rec_line, r->error)));
	if (want_header)
		for (int i = 0; i < r->nfields; i++)
			names = lappend(names, r->fstart[i] < 0 ? pstrdup("") :
							pstrdup(FILE_FIELD_TEXT(r, i)));
	return names;
}

/* ---------------------------------------------------------------------
 * migrate._file_header(path, options): the header's field names
 * ---------------------------------------------------------------------
 */
Datum
migrate_file_header(PG_FUNCTION_ARGS)
{
	char	   *pattern = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ArrayType  *optarr = PG_GETARG_ARRAYTYPE_P(1);
	List	   *options = NIL;
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	FileFormat	fmt;
	char	   *ignored;
	char	  **paths;
	int			npaths;
	FileReader	r;
	List	   *names;
	Datum	   *out;
	ListCell   *lc;

	migrate_file_check_privilege();
	deconstruct_array(optarr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &nelems);
	for (int i = 0; i + 1 < nelems; i += 2)
		if (!nulls[i] && !nulls[i + 1])
			options = lappend(options, makeDefElem(TextDatumGetCString(elems[i]),
												   (Node *) makeString(TextDatumGetCString(elems[i + 1])), -1));
	migrate_file_parse_options(options, &fmt, &ignored);
	fmt.header = true;
	paths = migrate_file_expand(pattern, &npaths);
	migrate_file_open(&r, &fmt, paths[0]);
	names = migrate_file_skip_head(&r, true);
	migrate_file_close(&r);
	if (names == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
				 errmsg("file \"%s\" has no header line", paths[0]),
				 errhint("Pass columns => ARRAY[...] and header => false for a file without one.")));
	out = palloc(sizeof(Datum) * list_length(names));
	foreach(lc, names)
		out[foreach_current_index(lc)] = CStringGetTextDatum(lfirst(lc));
	PG_RETURN_ARRAYTYPE_P(construct_array(out, list_length(names), TEXTOID, -1, false, TYPALIGN_INT));
}

