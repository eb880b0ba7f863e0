/*-------------------------------------------------------------------------
 *
 * fileread.h
 *	  The reader of file sources (fileread.c), shared with the foreign data
 *	  wrapper that serves them (filesrc.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_FILEREAD_H
#define MIGRATE_FILEREAD_H

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"

#define FILE_POS_SHIFT	40
#define FILE_POS_MASK	((INT64CONST(1) << FILE_POS_SHIFT) - 1)
#define FILE_POS(f, off)	(((int64) (f) << FILE_POS_SHIFT) | (int64) (off))
#define FILE_MAX_FILES	(1 << 22)
#define FILE_BUF_SIZE	65536

/* a delimiter, quote, escape or line end: one or a few bytes */
#define FILE_TOKEN_MAX	8
typedef struct FileToken
{
	char		s[FILE_TOKEN_MAX];
	int			len;			/* 0: none */
} FileToken;

/* how the files of a source are written */
typedef struct FileFormat
{
	char		kind;			/* 'c' csv, 't' text, 'l' lines */
	bool		header;
	char		delim;			/* their first bytes (the fast paths': one */
	char		quote;			/* ASCII byte each, unless general) */
	char		escape;
	bool		general;		/* a token of several bytes, or a line end
								 * other than \n: records and fields are
								 * found by the tokens below */
	FileToken	delim_t;		/* in the database's encoding (fields are */
	FileToken	quote_t;		/* cut from the converted record) */
	FileToken	escape_t;
	FileToken	quote_f;		/* in the files' encoding (records are found */
	FileToken	escape_f;		/* in their bytes) */
	FileToken	eol_f;			/* the line end; none: \n (and \r\n) */
	int			lookahead;		/* bytes a token match may need */
	bool		token_start[256];	/* the first bytes of the line end, quote
									 * and escape in the files */
	char	   *null_str;
	int			null_len;
	bool		trim;			/* csv: blanks around unquoted text dropped */
	bool		strict;			/* csv: quotes only around a whole field */
	bool		ragged;			/* another number of fields than columns: the
								 * missing ones NULL, extra ones dropped */
	char		nul;			/* NUL bytes: 'r' reject the line, 'n' a field
								 * of NULs only is NULL, 's' stripped */
	int			encoding;		/* of the files */
	bool		ascii;			/* 7-bit ASCII: a byte above 0x7F is an error */
	int			skip_lines;		/* physical lines before the header or data */
} FileFormat;

/* one open file, read as records */
typedef struct FileReader
{
	const FileFormat *fmt;
	const char *path;
	int			fd;
	char	   *buf;			/* FILE_BUF_SIZE bytes at least: bufcap */
	int			bufcap;
	StringInfoData spare;		/* the next buf, when bytes are read again */
	int			buflen;
	int			bufpos;
	bool		eof;
	int64		offset;			/* file offset of buf[bufpos] */
	int64		line;			/* physical line at offset */
	Oid			conv_proc;		/* file encoding -> database's, or InvalidOid */
	int			db_encoding;

	/* the record last read */
	StringInfoData raw;			/* its bytes, without the line end */
	int64		rec_start;
	int64		rec_line;
	int			rec_lines;		/* physical lines it spans */
	bool		rec_open_quote; /* the file ended inside a quoted field */
	bool		rec_cr;			/* its line end: a \r (cut off raw), */
	bool		rec_nl;			/* a \n (none: the file's end) */
	bool		rec_no_quote;	/* known to hold no quote character */
	StringInfoData nulfree;		/* raw with its NUL bytes dealt with (fmt->nul) */
	StringInfoData text;		/* raw converted to the database's encoding */
	const char *tdata;			/* the record in the database's encoding: */
	int			tlen;			/* raw itself, or text */
	StringInfoData fieldbuf;	/* the fields, each NUL-terminated */
	int			nfields;
	int			maxfields;
	int		   *fstart;			/* offsets into fieldbuf, -1: NULL */
	const char *error;			/* why it does not parse, or NULL */
} FileReader;

/* field i of the record last read (not NULL): its text datum and its C string */
#define FILE_FIELD_DATUM(r, i)	PointerGetDatum((r)->fieldbuf.data + (r)->fstart[i])
#define FILE_FIELD_TEXT(r, i)	((r)->fieldbuf.data + (r)->fstart[i] + VARHDRSZ)

extern void migrate_file_parse_options(List *options, FileFormat *fmt, char **pattern);
extern void migrate_file_check_privilege(void);
extern char **migrate_file_expand(const char *pattern, int *npaths);
extern void migrate_file_open(FileReader *r, const FileFormat *fmt, const char *path);
extern void migrate_file_close(FileReader *r);
extern void migrate_file_seek(FileReader *r, int64 offset, int64 line);
extern bool migrate_file_next(FileReader *r, int ncols, bool skip);
extern char *migrate_file_raw_text(FileReader *r);
extern List *migrate_file_skip_head(FileReader *r, bool want_header);

#endif							/* MIGRATE_FILEREAD_H */
