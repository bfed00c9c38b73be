package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// A plans file is an agency's complete set of plans, in YAML or JSON
// (JSON is YAML too):
//
//	agency: ilo            # optional: the owner, checked against --cert
//	plans:
//	  - externalId: XM-DAC-41302-KH-2026-01
//	    title: ...
//
// (or just the list). Each plan is a Plan in the API's protobuf JSON
// form, read as the dataset definition files are (see converter): field
// names in lowerCamelCase or as in the .proto file, enum values in full
// or as flags write them ("concept", "prevention", "funding"), strictly,
// so that a typo fails naming the field, its path (plans[2].niches[0]) and
// its line. Besides, a date (the start and end of a period) may be
// written YYYY-MM-DD.

// maxPlansFile is the largest plans file read: a thousand plans, the
// most ApplyPlans takes, with room to spare.
const maxPlansFile = 16 << 20

// planFile is what a plans file holds.
type planFile struct {
	// agency is the owner the file names ("agencies/ilo"), or "".
	agency string
	// plans are the plans, in file order.
	plans []*exchangev1.Plan
	// lines holds the line of each plan in the file.
	lines []int
}

// readPlansFile reads the plans file path (relative to the working
// directory; "-" for standard input).
func readPlansFile(a *app, path string) (*planFile, error) {
	var r io.Reader = a.env.Stdin
	name := "standard input"
	if path != "-" {
		f, err := os.Open(a.path(path))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r, name = f, path
	}
	data, err := io.ReadAll(io.LimitReader(r, maxPlansFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > maxPlansFile {
		return nil, &inputError{file: name, msg: fmt.Sprintf("larger than %d bytes", maxPlansFile)}
	}
	return parsePlansFile(name, data)
}

// parsePlansFile parses a plans file's contents; name names the file in
// errors.
func parsePlansFile(name string, data []byte) (*planFile, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &inputError{file: name, msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, &inputError{file: name, msg: `empty: list your plans under "plans:" ("plans: []" for none at all)`}
	}
	out := &planFile{}
	var list *yaml.Node
	switch root := resolveAlias(doc.Content[0]); root.Kind {
	case yaml.SequenceNode:
		list = root
	case yaml.MappingNode:
		seen := map[string]bool{}
		for i := 0; i+1 < len(root.Content); i += 2 {
			k, v := root.Content[i], resolveAlias(root.Content[i+1])
			if seen[k.Value] {
				return nil, &inputError{file: name, line: k.Line, field: k.Value, msg: "given twice"}
			}
			seen[k.Value] = true
			switch k.Value {
			case "agency":
				id, err := agencyID(v.Value)
				if v.Kind != yaml.ScalarNode || err != nil {
					return nil, &inputError{file: name, line: v.Line, field: "agency", msg: fmt.Sprintf("%q is not an agency id such as ilo", v.Value)}
				}
				out.agency = client.AgencyName(id)
			case "plans":
				if v.Kind != yaml.SequenceNode && !isNull(v) {
					return nil, &inputError{file: name, line: v.Line, field: "plans", msg: "want a list of plans"}
				}
				list = v
			default:
				return nil, &inputError{file: name, line: k.Line, field: k.Value, msg: `unknown key (a plans file has "agency" and "plans")`}
			}
		}
		if list == nil {
			return nil, &inputError{file: name, line: root.Line, field: "plans", msg: `missing: list your plans under "plans:" ("plans: []" for none at all)`}
		}
	default:
		return nil, &inputError{file: name, line: root.Line, msg: `want a mapping with "plans:", or a list of plans`}
	}
	if err := datesToMessages(name, list); err != nil {
		return nil, err
	}
	conv := converter{file: name}
	planDesc := (&exchangev1.Plan{}).ProtoReflect().Descriptor()
	first := map[string]int{}
	for i, n := range list.Content {
		path := fmt.Sprintf("plans[%d]", i)
		n = resolveAlias(n)
		obj, err := conv.message(n, planDesc, path)
		if err != nil {
			return nil, err
		}
		js, err := json.Marshal(obj)
		if err != nil {
			return nil, &inputError{file: name, line: n.Line, field: path, msg: err.Error()}
		}
		p := &exchangev1.Plan{}
		if err := protojson.Unmarshal(js, p); err != nil {
			return nil, &inputError{file: name, line: n.Line, field: path, msg: jsonError(err).Error()}
		}
		if p.GetExternalId() == "" {
			return nil, &inputError{file: name, line: n.Line, field: path + ".externalId",
				msg: "missing: every plan needs your own id for it (its IATI identifier or a project code), which apply matches plans by"}
		}
		if j, dup := first[p.GetExternalId()]; dup {
			return nil, &inputError{file: name, line: n.Line, field: path + ".externalId",
				msg: fmt.Sprintf("%q is also the external id of plans[%d] (line %d)", p.GetExternalId(), j, out.lines[j])}
		}
		first[p.GetExternalId()] = i
		out.plans = append(out.plans, p)
		out.lines = append(out.lines, n.Line)
	}
	return out, nil
}

// isoDate is what a date written YYYY-MM-DD looks like.
var isoDate = regexp.MustCompile(`^\d{4}-\d{1,2}-\d{1,2}$`)

// datesToMessages rewrites, anywhere under n, the value of a "start" or
// "end" key written as a date (YYYY-MM-DD) into the CalendarDate mapping
// {year, month, day} that the converter reads. Only periods have start
// and end keys in a plan.
func datesToMessages(file string, n *yaml.Node) error {
	n = resolveAlias(n)
	switch n.Kind {
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if err := datesToMessages(file, c); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], resolveAlias(n.Content[i+1])
			if (k.Value == "start" || k.Value == "end") && v.Kind == yaml.ScalarNode && isoDate.MatchString(v.Value) {
				t, err := time.Parse("2006-1-2", v.Value)
				if err != nil {
					return &inputError{file: file, line: v.Line, field: k.Value, msg: fmt.Sprintf("%q is not a date (want YYYY-MM-DD)", v.Value)}
				}
				n.Content[i+1] = dateNode(v, t)
				continue
			}
			if err := datesToMessages(file, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// dateNode is a CalendarDate mapping for t, at the place of node at.
func dateNode(at *yaml.Node, t time.Time) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode, Line: at.Line, Column: at.Column}
	for _, kv := range [][2]string{{"year", fmt.Sprint(t.Year())}, {"month", fmt.Sprint(int(t.Month()))}, {"day", fmt.Sprint(t.Day())}} {
		m.Content = append(m.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: kv[0], Line: at.Line, Column: at.Column},
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: kv[1], Line: at.Line, Column: at.Column})
	}
	return m
}
