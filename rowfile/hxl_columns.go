package rowfile

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// normalHashtag is a hashtag as HXL tools compare them: in lower case,
// without spaces, its attributes sorted and each once, so that
// "#Affected +F+children" and "#affected+children+f" are the same.
func normalHashtag(tag string) string {
	tag = strings.ToLower(strings.Join(strings.Fields(tag), ""))
	parts := strings.Split(tag, "+")
	attrs := slices.Compact(slices.Sorted(slices.Values(parts[1:])))
	return strings.Join(append(parts[:1], attrs...), "+")
}

// columnName names the column at 0-based index i as a spreadsheet does
// (A, B, ..., Z, AA, ...) together with its number.
func columnName(i int) string {
	letters := ""
	for n := i + 1; n > 0; n = (n - 1) / 26 {
		letters = string(rune('A'+(n-1)%26)) + letters
	}
	return fmt.Sprintf("%d (%s)", i+1, letters)
}

// matchHashtags matches the columns of a file with a hashtag row to the
// schema's columns, as HXL tools do: a column's hashtag and attributes
// must be those the CSV writer gives the schema's column (see the HXL
// section of the package documentation), attributes in any order and any
// case; its header text is not looked at. A column without a hashtag is
// matched by its header, and one without either is ignored (its cells
// must be empty). A cell of the hashtag row that is not a hashtag, or a
// hashtag the dataset does not have, is a *LineError naming the line of
// the hashtag row and the column. It returns the columns by position in
// the file and the names of those found.
func matchHashtags(cols []column, header, tags []string, headerLine, tagLine int) ([]column, map[string]bool, error) {
	byTag := make(map[string]column, len(cols))
	known := make([]string, 0, len(cols))
	for _, c := range cols {
		tag, err := c.hashtag()
		if err != nil {
			return nil, nil, err
		}
		k := normalHashtag(tag)
		if other, dup := byTag[k]; dup {
			return nil, nil, fmt.Errorf("rowfile: the schema gives columns %s and %s the same hashtag %s, so a hashtag row cannot tell them apart; remove the hashtag row to match columns by header", other.name, c.name, tag)
		}
		byTag[k] = c
		known = append(known, tag)
	}
	n := max(len(header), len(tags))
	out := make([]column, n)
	seen := map[string]bool{}
	for i := range n {
		tag, head := "", ""
		if i < len(tags) {
			tag = strings.TrimSpace(tags[i])
		}
		if i < len(header) {
			head = strings.TrimSpace(header[i])
		}
		var c column
		switch {
		case tag == "" && head == "":
			out[i] = column{kind: kindIgnored}
			continue
		case tag == "":
			m, _, err := matchHeaders(cols, []string{head}, headerLine)
			if err != nil {
				var le *LineError
				if errors.As(err, &le) {
					le.Err = fmt.Errorf("column %s has no hashtag, and its header names no column of the dataset: %w", columnName(i), le.Err)
				}
				return nil, nil, err
			}
			c = m[0]
		case !hxlHashtag.MatchString(tag):
			return nil, nil, &LineError{Line: tagLine, Column: tag, Err: fmt.Errorf("column %s of the hashtag row is not an HXL hashtag (like #affected+f)", columnName(i))}
		default:
			var ok bool
			if c, ok = byTag[normalHashtag(tag)]; !ok {
				return nil, nil, &LineError{Line: tagLine, Column: tag, Err: fmt.Errorf("unknown hashtag in column %s (the dataset's hashtags are %s)", columnName(i), strings.Join(known, ", "))}
			}
		}
		if seen[c.name] {
			return nil, nil, &LineError{Line: tagLine, Column: c.name, Err: fmt.Errorf("repeated column: column %s is %s again", columnName(i), c.name)}
		}
		seen[c.name] = true
		out[i] = c
	}
	return out, seen, nil
}
