package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// A dataset definition file is a Dataset in the API's protobuf JSON form,
// written as YAML or JSON (JSON is YAML too), with the dataset's id as a
// top-level "id". Field names are the API's, in lowerCamelCase
// ("periodType") or as in the .proto file ("period_type"). Enum values
// may be written as exchangectl's flags write them ("month",
// "province", "integer") or in full ("PERIOD_TYPE_MONTH"). The file is
// read strictly: an unknown or repeated field, or a value of the wrong
// type, is an error naming the field, its path and its line, so that a
// typo never silently drops a setting.

// maxDefinitionFile is the largest definition file read.
const maxDefinitionFile = 1 << 20

// inputError is a mistake in an input file, found before any call: the
// command exits with ExitInvalid, as when the exchange refuses input.
type inputError struct {
	// file names the file as given, "standard input" for -.
	file string
	// line is the 1-based line of the mistake, 0 for the file as a whole.
	line int
	// field is the path of the field at fault, such as
	// "schema.measures[1].lable", or "".
	field string
	msg   string
}

func (e *inputError) Error() string {
	var b strings.Builder
	b.WriteString(e.file)
	if e.line > 0 {
		fmt.Fprintf(&b, ", line %d", e.line)
	}
	b.WriteString(": ")
	if e.field != "" {
		b.WriteString(e.field + ": ")
	}
	b.WriteString(e.msg)
	return b.String()
}

// datasetDefinition is what a definition file holds.
type datasetDefinition struct {
	// id is the file's top-level id, or the id in its name when it has
	// none.
	id string
	// agency is the owner's agency id when the file gives the dataset's
	// name ("agencies/ilo/datasets/returns", as 'datasets get' prints it),
	// "" when it gives only an id.
	agency  string
	dataset *exchangev1.Dataset
}

// readDatasetFile reads the definition file path (relative to the working
// directory; "-" for standard input).
func readDatasetFile(a *app, path string) (*datasetDefinition, error) {
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
	data, err := io.ReadAll(io.LimitReader(r, maxDefinitionFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > maxDefinitionFile {
		return nil, &inputError{file: name, msg: fmt.Sprintf("larger than %d bytes; a dataset definition is much smaller", maxDefinitionFile)}
	}
	return parseDatasetDefinition(name, data)
}

// datasetIDPattern is the syntax of a dataset id.
var datasetIDPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{1,62}[a-z0-9]$`)

// parseDatasetDefinition parses a definition file's contents; name names
// the file in errors.
func parseDatasetDefinition(name string, data []byte) (*datasetDefinition, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &inputError{file: name, msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, &inputError{file: name, msg: "empty: want a dataset definition (id, title, periodType, schema...)"}
	}
	root := resolveAlias(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return nil, &inputError{file: name, line: root.Line, msg: "want a mapping of fields (id, title, periodType, schema...)"}
	}
	def := &datasetDefinition{}
	conv := converter{file: name}
	var rest []*yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], resolveAlias(root.Content[i+1])
		if k.Value != "id" {
			rest = append(rest, k, v)
			continue
		}
		if def.id != "" {
			return nil, &inputError{file: name, line: k.Line, field: "id", msg: "given twice"}
		}
		if v.Kind != yaml.ScalarNode || !datasetIDPattern.MatchString(v.Value) {
			return nil, &inputError{file: name, line: v.Line, field: "id", msg: fmt.Sprintf("%q is not a dataset id: want 3 to 64 lowercase letters, digits and hyphens, starting with a letter", v.Value)}
		}
		def.id = v.Value
	}
	obj, err := conv.message(&yaml.Node{Kind: yaml.MappingNode, Content: rest, Line: root.Line}, (&exchangev1.Dataset{}).ProtoReflect().Descriptor(), "")
	if err != nil {
		return nil, err
	}
	js, err := json.Marshal(obj)
	if err != nil {
		return nil, &inputError{file: name, msg: err.Error()}
	}
	def.dataset = &exchangev1.Dataset{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, def.dataset); err != nil {
		// The converter catches what a person gets wrong; protojson's
		// positions are in the JSON made from the file, so leave them out.
		return nil, &inputError{file: name, msg: jsonError(err).Error()}
	}
	if n := def.dataset.GetName(); n != "" {
		arg, err := parseDatasetArg(n)
		if err != nil || !strings.HasPrefix(n, "agencies/") || strings.Count(n, "/") != 3 {
			return nil, &inputError{file: name, field: "name", msg: fmt.Sprintf("%q is not a dataset name: want agencies/AGENCY/datasets/ID, or leave it out and give the id", n)}
		}
		if def.id == "" {
			def.id = arg.id
		}
		if arg.id != def.id {
			return nil, &inputError{file: name, field: "name", msg: fmt.Sprintf("%s does not match the id %s", n, def.id)}
		}
		def.agency = arg.agency
	}
	if def.id == "" {
		return nil, &inputError{file: name, field: "id", msg: "missing: give the dataset's id at the top, for example \"id: returns\""}
	}
	return def, nil
}

// protojsonNoise is protojson's prefix and position in its errors, with
// the plain or non-breaking spaces it varies from build to build on
// purpose.
var protojsonNoise = regexp.MustCompile(`^proto:[ \x{00a0}]*|\(line \d+:\d+\):[ \x{00a0}]*`)

// jsonError drops protojson's prefix and position from err.
func jsonError(err error) error {
	return errors.New(protojsonNoise.ReplaceAllString(err.Error(), ""))
}

// resolveAlias follows YAML aliases (*name) to the node they name.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// converter turns the YAML tree of a definition into the JSON value
// protojson reads, checking field names, enum values and scalar types
// against the message descriptors, with the line of each mistake.
type converter struct {
	file string
}

// fail returns an inputError at node n.
func (c converter) fail(n *yaml.Node, field, format string, args ...any) error {
	return &inputError{file: c.file, line: n.Line, field: field, msg: fmt.Sprintf(format, args...)}
}

// join extends a field path.
func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// isNull reports whether n is YAML's null (~, null or nothing).
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// message converts a mapping into a JSON object of message md.
func (c converter) message(n *yaml.Node, md protoreflect.MessageDescriptor, path string) (map[string]any, error) {
	if n.Kind != yaml.MappingNode {
		return nil, c.fail(n, path, "want a mapping of %s fields", md.Name())
	}
	out := map[string]any{}
	seen := map[protoreflect.FieldNumber]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolveAlias(n.Content[i+1])
		fd := md.Fields().ByJSONName(k.Value)
		if fd == nil {
			fd = md.Fields().ByName(protoreflect.Name(k.Value))
		}
		if fd == nil {
			return nil, c.fail(k, join(path, k.Value), "unknown field (a %s has %s)", md.Name(), fieldList(md))
		}
		field := join(path, fd.JSONName())
		if seen[fd.Number()] {
			return nil, c.fail(k, field, "given twice")
		}
		seen[fd.Number()] = true
		if isNull(v) {
			continue
		}
		var err error
		switch {
		case fd.IsList():
			out[fd.JSONName()], err = c.list(v, fd, field)
		case fd.IsMap():
			out[fd.JSONName()], err = c.mapping(v, fd, field)
		default:
			out[fd.JSONName()], err = c.singular(v, fd, field)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fieldList names the fields of md for an error message.
func fieldList(md protoreflect.MessageDescriptor) string {
	names := make([]string, md.Fields().Len())
	for i := range names {
		names[i] = md.Fields().Get(i).JSONName()
	}
	return strings.Join(names, ", ")
}

// list converts a sequence for a repeated field.
func (c converter) list(n *yaml.Node, fd protoreflect.FieldDescriptor, path string) ([]any, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, c.fail(n, path, "want a list")
	}
	out := make([]any, 0, len(n.Content))
	for i, item := range n.Content {
		v, err := c.singular(resolveAlias(item), fd, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// mapping converts a mapping for a map field.
func (c converter) mapping(n *yaml.Node, fd protoreflect.FieldDescriptor, path string) (map[string]any, error) {
	if n.Kind != yaml.MappingNode {
		return nil, c.fail(n, path, "want a mapping")
	}
	out := map[string]any{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolveAlias(n.Content[i+1])
		if _, dup := out[k.Value]; dup {
			return nil, c.fail(k, path+"."+k.Value, "given twice")
		}
		val, err := c.singular(v, fd.MapValue(), path+"."+k.Value)
		if err != nil {
			return nil, err
		}
		out[k.Value] = val
	}
	return out, nil
}

// singular converts one value of field fd.
func (c converter) singular(n *yaml.Node, fd protoreflect.FieldDescriptor, path string) (any, error) {
	if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
		md := fd.Message()
		if strings.HasPrefix(string(md.FullName()), "google.protobuf.") {
			// Well-known types (timestamps, in output-only fields) have
			// their own JSON forms; protojson checks them.
			var v any
			if err := n.Decode(&v); err != nil {
				return nil, c.fail(n, path, "%v", err)
			}
			if n.Kind == yaml.ScalarNode {
				v = n.Value
			}
			return v, nil
		}
		return c.message(n, md, path)
	}
	if n.Kind != yaml.ScalarNode {
		return nil, c.fail(n, path, "want a single value, not a %s", map[yaml.Kind]string{yaml.MappingNode: "mapping", yaml.SequenceNode: "list"}[n.Kind])
	}
	s := n.Value
	switch fd.Kind() {
	case protoreflect.StringKind, protoreflect.BytesKind:
		// Whatever YAML makes of it (2026, 2026-03-01, true), a text
		// field takes the text as written.
		return s, nil
	case protoreflect.BoolKind:
		b, err := strconv.ParseBool(strings.ToLower(strings.TrimSpace(s)))
		if err != nil {
			return nil, c.fail(n, path, "%q is not true or false", s)
		}
		return b, nil
	case protoreflect.EnumKind:
		return c.enum(n, fd.Enum(), path)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return c.integer(n, path, 32)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return c.integer(n, path, 64)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		v, err := c.integer(n, path, 64)
		if err == nil && strings.HasPrefix(v, "-") {
			return nil, c.fail(n, path, "%q is negative", s)
		}
		return v, err
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		x, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, c.fail(n, path, "%q is not a number", s)
		}
		// protojson reads numbers given as strings, in any of its forms.
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	}
	return nil, c.fail(n, path, "fields of type %s cannot be set from a file", fd.Kind())
}

// integer parses a whole number of the given size, written in decimal
// (or 0x... hexadecimal), and returns it in decimal, as a string that
// protojson reads for every integer type.
func (c converter) integer(n *yaml.Node, path string, bits int) (string, error) {
	s := strings.ReplaceAll(strings.TrimSpace(n.Value), "_", "")
	v, err := strconv.ParseInt(s, 0, bits)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return "", c.fail(n, path, "%q is out of range", n.Value)
		}
		return "", c.fail(n, path, "%q is not a whole number", n.Value)
	}
	return strconv.FormatInt(v, 10), nil
}

// enum returns the full name of the enum value n names: in full
// ("PERIOD_TYPE_MONTH"), without the prefix, in any case, with hyphens
// or underscores ("month", "fiscal-year"), or by number.
func (c converter) enum(n *yaml.Node, ed protoreflect.EnumDescriptor, path string) (string, error) {
	zero := ed.Values().ByNumber(0)
	names := enumNames{
		what:   strings.ToLower(strings.Join(splitCamel(string(ed.Name())), " ")),
		prefix: strings.TrimSuffix(string(zero.Name()), "UNSPECIFIED"),
		desc:   ed,
	}
	if num, err := strconv.Atoi(n.Value); err == nil {
		if v := ed.Values().ByNumber(protoreflect.EnumNumber(num)); v != nil && num != 0 {
			return string(v.Name()), nil
		}
	}
	num, err := names.parse(n.Value)
	if err != nil {
		return "", c.fail(n, path, "%v", err)
	}
	return string(ed.Values().ByNumber(num).Name()), nil
}

// splitCamel splits "PeriodType" into "Period", "Type".
func splitCamel(s string) []string {
	var words []string
	start := 0
	for i := 1; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' {
			words = append(words, s[start:i])
			start = i
		}
	}
	return append(words, s[start:])
}
