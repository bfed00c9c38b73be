package rowfile

import "strings"

// The guard against spreadsheet formulas (see "CSV layout" in the package
// documentation): OWASP's advice against CSV injection, made reversible.

// formulaStarts are the first characters that make a spreadsheet read a
// cell as a formula, and the apostrophe that guards them.
const formulaStarts = "=+-@\t\r'"

// GuardCell returns s as a CSV writer writes a text cell: with an
// apostrophe in front if a spreadsheet could take it for a formula (it
// starts with =, +, -, @, a tab or a carriage return) or if it starts with
// an apostrophe. Other CSV files made for people, such as exchangectl's
// plan views, use it for their text cells too.
func GuardCell(s string) string {
	if s != "" && strings.IndexByte(formulaStarts, s[0]) >= 0 {
		return "'" + s
	}
	return s
}

// unguardCell undoes GuardCell: it removes an apostrophe that stands in
// front of one of the characters guardCell guards. Any other cell is
// returned as it is.
func unguardCell(s string) string {
	if len(s) >= 2 && s[0] == '\'' && strings.IndexByte(formulaStarts, s[1]) >= 0 {
		return s[1:]
	}
	return s
}
