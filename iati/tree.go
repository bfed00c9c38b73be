package iati

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// maxDepth bounds element nesting; IATI files nest at most five deep.
const maxDepth = 32

// node is one element of the document. The mapping marks what it uses,
// so that everything left unmarked can be reported as unmapped.
type node struct {
	name     string // "prefix:local" for elements outside the IATI vocabulary
	path     string // "iati-activity[2]/sector[1]", positions among same-name siblings
	attrs    []*attr
	children []*node
	text     string
	used     bool
	reason   string // why the mapping left it out, when it decided to
}

type attr struct {
	name   string
	value  string
	used   bool
	reason string
}

// parseTree reads a whole XML document into a tree. Namespace prefixes
// are kept as written ("xml:lang"); DTDs and entities other than XML's
// own are not processed.
func parseTree(data []byte) (*node, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	d.CharsetReader = func(label string, _ io.Reader) (io.Reader, error) {
		return nil, fmt.Errorf("the file is encoded as %s; IATI files must be UTF-8", label)
	}
	var root *node
	var stack []*node
	var texts []*strings.Builder
	for {
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not well-formed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= maxDepth {
				return nil, fmt.Errorf("elements nest deeper than %d levels", maxDepth)
			}
			n := &node{name: qname(t.Name)}
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue // namespace declarations carry no data
				}
				n.attrs = append(n.attrs, &attr{name: qname(a.Name), value: a.Value})
			}
			if len(stack) == 0 {
				if root != nil {
					return nil, errors.New("not well-formed XML: more than one root element")
				}
				root = n
				n.path = n.name
			} else {
				parent := stack[len(stack)-1]
				pos := 1
				for _, c := range parent.children {
					if c.name == n.name {
						pos++
					}
				}
				n.path = fmt.Sprintf("%s[%d]", n.name, pos)
				if len(stack) > 1 {
					n.path = parent.path + "/" + n.path
				}
				parent.children = append(parent.children, n)
			}
			stack = append(stack, n)
			texts = append(texts, new(strings.Builder))
		case xml.EndElement:
			if len(stack) == 0 || stack[len(stack)-1].name != qname(t.Name) {
				return nil, fmt.Errorf("not well-formed XML: unexpected </%s>", qname(t.Name))
			}
			n := stack[len(stack)-1]
			n.text = strings.TrimSpace(texts[len(texts)-1].String())
			stack, texts = stack[:len(stack)-1], texts[:len(texts)-1]
		case xml.CharData:
			if len(texts) > 0 {
				texts[len(texts)-1].Write(t)
			}
		}
	}
	if root == nil {
		return nil, errors.New("the file has no root element")
	}
	if len(stack) != 0 {
		return nil, fmt.Errorf("not well-formed XML: <%s> is not closed", stack[len(stack)-1].name)
	}
	if !utf8.Valid(data) {
		return nil, errors.New("the file is not valid UTF-8")
	}
	return root, nil
}

func qname(n xml.Name) string {
	if n.Space != "" {
		return n.Space + ":" + n.Local
	}
	return n.Local
}

// attr returns the value of the named attribute and marks it used.
func (n *node) attr(name string) string {
	for _, a := range n.attrs {
		if a.name == name {
			a.used = true
			return strings.TrimSpace(a.value)
		}
	}
	return ""
}

// peek returns the value of the named attribute without marking it.
func (n *node) peek(name string) string {
	for _, a := range n.attrs {
		if a.name == name {
			return strings.TrimSpace(a.value)
		}
	}
	return ""
}

// skipAttr records why the mapping leaves an attribute out.
func (n *node) skipAttr(name, reason string) {
	for _, a := range n.attrs {
		if a.name == name {
			a.reason = reason
		}
	}
}

// all returns the children with the given name.
func (n *node) all(name string) []*node {
	var out []*node
	for _, c := range n.children {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

// first returns the first child with the given name, or nil.
func (n *node) first(name string) *node {
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

// skip records why the mapping leaves an element out.
func (n *node) skip(reason string) { n.reason = reason }

// Unmapped is a part of an IATI file the import could not carry into a
// plan, or carried with a loss.
type Unmapped struct {
	// Path locates it: "iati-activity[2]/transaction[1]" for an element,
	// ".../sector[1]/@percentage" for an attribute. Positions count from 1
	// among siblings of the same name.
	Path string
	// Value is its code or text, shortened.
	Value string
	// Reason says why it was not mapped.
	Reason string
}

// unused lists the parts of n that the mapping did not use: an unused
// element once (not its descendants), and the unused attributes of used
// elements, each with the mapping's reason or the default one for its
// name (see reasons.go).
func unused(n *node) []Unmapped {
	var out []Unmapped
	var walk func(*node)
	walk = func(n *node) {
		if !n.used {
			out = append(out, Unmapped{Path: n.path, Value: summary(n), Reason: reasonFor(n.reason, n.name)})
			return
		}
		for _, a := range n.attrs {
			if !a.used {
				out = append(out, Unmapped{Path: n.path + "/@" + a.name, Value: shorten(a.value), Reason: reasonFor(a.reason, "@"+a.name)})
			}
		}
		for _, c := range n.children {
			walk(c)
		}
	}
	walk(n)
	return out
}

// summary is a short value for an unmapped element: its code or ref
// attribute, else its text, else its first narrative.
func summary(n *node) string {
	for _, k := range []string{"code", "ref", "iso-date", "type"} {
		if v := n.peek(k); v != "" {
			return shorten(v)
		}
	}
	if n.text != "" {
		return shorten(n.text)
	}
	if nar := n.first("narrative"); nar != nil {
		return shorten(nar.text)
	}
	return ""
}

func shorten(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= 80 {
		return s
	}
	r := []rune(s)
	return string(r[:79]) + "…"
}
