// Package rowfile reads and writes a dataset's rows as the files people
// and spreadsheets use: CSV, optionally with a row of HXL hashtags, and
// JSON lines. Readers and writers stream: they hold one row at a time, so
// a file of any size takes little memory.
//
// # CSV layout
//
// The columns of a dataset's CSV file are, in this order:
//
//	period        the period label, like 2026-03, 2026-Q1, 2026 or FY2026
//	location      the location code at the schema's level, like KH-12
//	contributor   the contributing agency, like agencies/unodc
//	<category>... one column per category, in schema order, headed by its key
//	<measure>...  one column per measure, in schema order, headed by its key
//	deleted       true for a deleted row; only with CSVOptions.Tombstones
//
// The first row is the header. Cells hold values like this:
//
//	integer   decimal digits, with an optional sign: 42, -7
//	decimal   Go's shortest exact form (strconv 'g', -1): 0.1, 2.5e-08
//	text      the text as is; commas, quotes and line breaks are quoted;
//	          an apostrophe in front if it starts with =, +, -, @, a tab,
//	          a carriage return or an apostrophe (see below)
//	date      YYYY-MM-DD
//	boolean   true or false; on import also TRUE/FALSE, yes/no, 1/0 in any case
//	code      the code as is, guarded like text
//
// Spreadsheets run a cell that starts with =, +, - or @ (or a tab or a
// carriage return before one) as a formula when the file is opened, so a
// text one agency wrote could act in another agency's spreadsheet, for
// example by fetching a web address with neighbouring cells in it. A CSV
// writer therefore puts an apostrophe in front of such text, code and
// category cells, and of those that start with an apostrophe themselves;
// a CSV reader removes one apostrophe in front of those characters, so
// that what is read is exactly what was written. CSVOptions.RawText
// writes the cells as stored, for files no spreadsheet will open.
//
// An empty cell means the category or value is not given, so an empty
// text cannot be told from no text. On import, cells other than text are
// trimmed of surrounding spaces, and a line break written as CR LF inside
// a quoted text reads back as LF.
//
// Import is forgiving where spreadsheets differ and strict about content:
// columns may come in any order and in any case, only period, location
// and required categories must be there, a contributor column is
// ignored (the server takes the contributor from the caller's
// certificate), a UTF-8 byte order mark is skipped, and rows whose cells
// are all empty are skipped, as are columns without a header and without
// values. An unknown or repeated column is an error naming it. A CSV
// writer skips deleted rows unless asked to write tombstones, so that a
// file written for people cannot resurrect deleted rows when imported.
//
// A category or measure may not be called period, location, contributor
// or deleted.
//
// # HXL
//
// With CSVOptions.HXL a second row gives each column a hashtag of the
// Humanitarian Exchange Language (https://hxlstandard.org), so that HXL
// tools (HDX, HXL Proxy, libhxl) understand the file:
//
//	period        #date+period
//	location      the schema's location_hxl, or by level:
//	              #country+code, #adm1+code (province), #adm2+code (district)
//	contributor   #org+code
//	<key>         the category's or measure's hxl, or #x_<key>
//	deleted       #x_deleted
//
// Keys without a hashtag get an extension hashtag: "#x_" and the key, with
// any character other than a lowercase letter, digit or underscore
// replaced by "_" (HXL reserves the "x_" prefix for hashtags outside its
// dictionary). A schema hashtag may leave out the "#"; one that is not
// valid HXL ("#" and a token, then "+" and a token any number of times,
// where a token is a letter followed by letters, digits or underscores)
// makes NewCSVWriter fail rather than write a hashtag row that would not
// be recognised.
//
// On import, the first or the second row is the hashtag row when at
// least half of its non-empty cells are hashtags (libhxl's rule). Then
// columns are matched as HXL tools match them, by hashtag and attributes,
// and their header texts are not looked at: a column's hashtag must be
// the one written for a column of the schema, as above, with its
// attributes in any order and any case and spaces anywhere
// ("#affected +children +F" is "#affected+f+children"). A hashtag the
// schema does not have (also one with an attribute more or less), a cell
// of the hashtag row that is not a hashtag, or a repeated column is an
// error naming the line of the hashtag row and the column, by number and
// letter. A column without a hashtag is matched by its header, and one
// with neither is ignored (its cells must be empty). A file without a
// hashtag row is matched by header.
//
// # JSON lines
//
// NewJSONLWriter writes each row as one line of compact protobuf JSON
// (canonical lowerCamelCase names, int64 as strings, fields in field
// order, map entries sorted by key), so that the same rows always give
// the same bytes:
//
//	{"contributor":"agencies/unodc","period":"2026-03","location":"KH-12","categories":{"sex":"female"},"values":{"cases":{"intValue":"4"}}}
//
// The JSON lines form keeps every field of a row, including revision,
// deleted and update time.
//
// # Streaming use
//
// Read rows until io.EOF. A *LineError is one bad line; report it and
// keep reading, so that one pass finds every bad line of a file:
//
//	r, err := rowfile.NewCSVReader(f, dataset)
//	if err != nil {
//		return err // no header, or a bad one
//	}
//	for {
//		row, err := r.Read()
//		if err == io.EOF {
//			break
//		}
//		var bad *rowfile.LineError
//		if errors.As(err, &bad) {
//			fmt.Fprintln(os.Stderr, bad) // line 7, column cases: "4.5" is not an integer
//			continue
//		}
//		if err != nil {
//			return err
//		}
//		batch = append(batch, row) // send batch to the server every few hundred rows
//	}
//
// Write rows one by one and Flush at the end:
//
//	w, err := rowfile.NewCSVWriter(os.Stdout, dataset, rowfile.CSVOptions{HXL: true})
//	...
//	for _, row := range page.GetRows() {
//		if err := w.Write(row); err != nil {
//			return err
//		}
//	}
//	return w.Flush()
//
// A file to push is one agency's rows, so each key (period, location and
// category values) may come once: RowKeys reports a row that repeats the
// key of an earlier row, identical or not, as a LineError for the later
// line naming the earlier ("line 9: repeats the key ... of line 4"),
// keeping a 16-byte digest and the line of each key.
//
// The reader converts cells by the schema's types only; allowed category
// values, code lists, bounds and required measures are the server's to
// check, and it reports them per row.
package rowfile
