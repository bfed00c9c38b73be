package server

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	validate "buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// This file generates malformed requests from the descriptors: it walks a
// valid base request, reads the buf.validate rules of every field it
// reaches, and makes one request per rule that breaks exactly that rule
// (or as nearly as the rules allow: a list of 21 unique niches cannot be
// made from 16 niches).

// badCase is one malformed request and the answer it must get.
type badCase struct {
	method   string        // full method name
	category string        // rule, enum-number, name-shape, huge, oversize, unknown-id, semantic
	what     string        // what is wrong, for failure messages
	req      proto.Message // the request to send
	code     codes.Code    // the status code required
	reason   string        // the ErrorInfo reason required; "" for none
	field    string        // the field path the answer must name; "" for none
	rules    []string      // rule ids of which one must be reported for field; nil for any
	item     bool          // the answer is the per-item result of a batch (BatchCreateReferrals, WriteDatasetRows)
	fieldKey string        // full name of the field descriptor broken, for coverage
	oversize bool          // pad the request past the receive limit when sending it
}

// defaultMaxRecv is the server's default receive limit.
const defaultMaxRecv = 4 << 20

// fieldStep is one hop from a message to a field, a list element or a map
// value.
type fieldStep struct {
	fd    protoreflect.FieldDescriptor
	index int    // list index; -1 when not a list element
	key   string // map key (every map here has string keys); valid when isKey
	isKey bool
}

// fieldLoc addresses a value inside a request.
type fieldLoc []fieldStep

func (l fieldLoc) with(s fieldStep) fieldLoc { return append(slices.Clone(l), s) }

// String formats the path as protovalidate does: a.b[0].c["k"].
func (l fieldLoc) String() string {
	var b strings.Builder
	for _, s := range l {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(string(s.fd.Name()))
		switch {
		case s.isKey:
			b.WriteString("[" + strconv.Quote(s.key) + "]")
		case s.index >= 0:
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
		}
	}
	return b.String()
}

// resolve returns the message l addresses in root (l must end at a
// message).
func (l fieldLoc) resolve(root protoreflect.Message) protoreflect.Message {
	m := root
	for _, s := range l {
		switch {
		case s.isKey:
			m = m.Mutable(s.fd).Map().Mutable(protoreflect.ValueOfString(s.key).MapKey()).Message()
		case s.index >= 0:
			m = m.Mutable(s.fd).List().Get(s.index).Message()
		default:
			m = m.Mutable(s.fd).Message()
		}
	}
	return m
}

// joinPath appends a field path to a prefix.
func joinPath(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// bufFieldRules returns the buf.validate rules of a field, or nil.
func bufFieldRules(fd protoreflect.FieldDescriptor) *validate.FieldRules {
	if fd.Options() == nil {
		return nil
	}
	r, _ := proto.GetExtension(fd.Options(), validate.E_Field).(*validate.FieldRules)
	if r == nil || !r.ProtoReflect().IsValid() || proto.Size(r) == 0 {
		return nil
	}
	return r
}

func bufMessageRules(md protoreflect.MessageDescriptor) *validate.MessageRules {
	if md.Options() == nil {
		return nil
	}
	r, _ := proto.GetExtension(md.Options(), validate.E_Message).(*validate.MessageRules)
	if r == nil || proto.Size(r) == 0 {
		return nil
	}
	return r
}

func bufOneofRules(od protoreflect.OneofDescriptor) *validate.OneofRules {
	if od.Options() == nil {
		return nil
	}
	r, _ := proto.GetExtension(od.Options(), validate.E_Oneof).(*validate.OneofRules)
	if r == nil || proto.Size(r) == 0 {
		return nil
	}
	return r
}

// setRuleFields names the fields set in a rules message.
func setRuleFields(m proto.Message) []string {
	var out []string
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		out = append(out, string(fd.Name()))
		return true
	})
	return out
}

// unhandledRules returns the set fields of m not in known.
func unhandledRules(m proto.Message, known ...string) []string {
	var out []string
	for _, f := range setRuleFields(m) {
		if !slices.Contains(known, f) {
			out = append(out, f)
		}
	}
	return out
}

// ruleBreaker is one way to break one rule: the value to set and the rule ids
// protovalidate may report for it (gte with lte reports "int32.gte_lte").
type ruleBreaker struct {
	rule  string   // the rule broken, for descriptions: "string.max_len"
	ids   []string // rule ids that may be reported
	value protoreflect.Value
}

// ruleWalker generates the malformed requests of one method.
type ruleWalker struct {
	method   string
	base     proto.Message
	itemAt   int  // loc length at which a batch item starts; 0 outside items
	relative bool // per-item violations name fields relative to the item
	cases    []*badCase
	problems []string // generator failures: unhandled rules, bases too thin
	reached  map[string]bool
	hugeSeen map[string]bool // repeated fields already sent with 100,000 items
	nameSeen map[string]bool // resource-name fields already given wrong shapes
}

func (w *ruleWalker) problem(format string, args ...any) {
	w.problems = append(w.problems, w.method+": "+fmt.Sprintf(format, args...))
}

// add records a case whose request is the base with mutate applied to
// the message at at.
func (w *ruleWalker) add(category string, at fieldLoc, path, fieldKey, rule string, ids []string, mutate func(m protoreflect.Message)) {
	req := proto.Clone(w.base)
	mutate(at.resolve(req.ProtoReflect()))
	c := &badCase{method: w.method, category: category, req: req, code: codes.InvalidArgument, reason: "INVALID_ARGUMENT",
		field: path, rules: ids, fieldKey: fieldKey, what: path + " " + rule}
	if category == "huge" && proto.Size(req) > defaultMaxRecv {
		// Too big to be read at all: the size limit answers first.
		c.code, c.reason, c.field, c.rules = codes.ResourceExhausted, "", "", nil
		c.what += fmt.Sprintf(" (%d bytes)", proto.Size(req))
	} else if w.itemAt > 0 && category != "huge" && (rule != "repeated.max_items" || !outputOnlyLists[protoreflect.FullName(fieldKey)]) {
		// A list 100,000 items long inside a batch item is far beyond
		// what maxExcessInIgnoredItems leaves for mistakes, and an
		// output-only list over its bound is never what the exchange
		// sent: the whole request is refused, naming the full path; any
		// other broken rule rejects the item alone.
		c.item = true
		if w.relative {
			c.field = strings.TrimPrefix(path, at[:w.itemAt].String()+".")
		}
	}
	w.reached[fieldKey] = true
	w.cases = append(w.cases, c)
}

// message walks one message of the base request at l.
func (w *ruleWalker) message(l fieldLoc, m protoreflect.Message) {
	md := m.Descriptor()
	if mr := bufMessageRules(md); mr != nil {
		if u := unhandledRules(mr, "cel"); len(u) > 0 {
			w.problem("%s: unhandled message rules %v", md.FullName(), u)
		}
		for _, r := range mr.GetCel() {
			brk, ok := celBreakers[r.GetId()]
			if !ok {
				w.problem("%s: no breaker for CEL rule %s: add one to celBreakers", md.FullName(), r.GetId())
				continue
			}
			w.add("rule", l, l.String(), string(md.FullName())+"#"+r.GetId(), "cel "+r.GetId(), []string{r.GetId()},
				func(m protoreflect.Message) { brk(m.Interface()) })
		}
	}
	for i := 0; i < md.Oneofs().Len(); i++ {
		od := md.Oneofs().Get(i)
		or := bufOneofRules(od)
		if or == nil {
			continue
		}
		if u := unhandledRules(or, "required"); len(u) > 0 {
			w.problem("%s: unhandled oneof rules %v", od.FullName(), u)
		}
		if or.GetRequired() {
			w.add("rule", l, joinPath(l.String(), string(od.Name())), string(od.FullName()), "oneof required", []string{"required"},
				func(m protoreflect.Message) {
					if fd := m.WhichOneof(od); fd != nil {
						m.Clear(fd)
					}
				})
		}
	}
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		w.field(l, m, fields.Get(i))
	}
}

// field makes the cases of one field and walks into its messages.
func (w *ruleWalker) field(l fieldLoc, m protoreflect.Message, fd protoreflect.FieldDescriptor) {
	rules := bufFieldRules(fd)
	here := l.with(fieldStep{fd: fd, index: -1})
	path := here.String()
	key := string(fd.FullName())
	if rules != nil && rules.GetIgnore() != validate.Ignore_IGNORE_ALWAYS {
		w.rules(l, m, fd, rules, path, key)
	}
	switch {
	case fd.IsMap():
		mp := m.Get(fd).Map()
		if fd.MapValue().Message() == nil || mp.Len() == 0 {
			return
		}
		for _, k := range sortedMapKeys(mp) {
			w.message(l.with(fieldStep{fd: fd, key: k, isKey: true, index: -1}), mp.Get(protoreflect.ValueOfString(k).MapKey()).Message())
		}
	case fd.IsList():
		list := m.Get(fd).List()
		if fd.Message() == nil || list.Len() == 0 {
			return
		}
		if outputOnlyLists[fd.FullName()] {
			// Dropped from the bytes before decoding (output_only.go):
			// nothing inside its items can be broken so that the
			// exchange sees it; only its bound can (repeatedRules above).
			return
		}
		at := l.with(fieldStep{fd: fd, index: 0})
		if rules.GetRepeated().GetItems().GetIgnore() == validate.Ignore_IGNORE_ALWAYS {
			// A batch item: the server validates it on its own and
			// reports it in the item's result.
			saved := w.itemAt
			w.itemAt = len(at)
			defer func() { w.itemAt = saved }()
		}
		w.message(at, list.Get(0).Message())
	case fd.Message() != nil:
		if m.Has(fd) {
			w.message(here, m.Get(fd).Message())
		}
	}
}

func sortedMapKeys(mp protoreflect.Map) []string {
	var keys []string
	mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k.String())
		return true
	})
	slices.Sort(keys)
	return keys
}

func firstMapKey(mp protoreflect.Map) string { return sortedMapKeys(mp)[0] }

// rules makes one case per rule of a field.
func (w *ruleWalker) rules(l fieldLoc, m protoreflect.Message, fd protoreflect.FieldDescriptor, r *validate.FieldRules, path, key string) {
	if u := unhandledRules(r, "required", "ignore", "string", "bytes", "int32", "int64", "enum", "repeated", "map"); len(u) > 0 {
		w.problem("%s: unhandled field rules %v", key, u)
	}
	ignoreZero := r.GetIgnore() == validate.Ignore_IGNORE_IF_ZERO_VALUE
	set := func(b ruleBreaker) func(m protoreflect.Message) {
		return func(m protoreflect.Message) { m.Set(fd, b.value) }
	}
	if r.GetRequired() {
		w.add("rule", l, path, key, "required", []string{"required"}, func(m protoreflect.Message) { m.Clear(fd) })
	}
	if fd.IsMap() {
		w.mapRules(l, m, fd, r.GetMap(), path, key)
		return
	}
	if fd.IsList() {
		w.repeatedRules(l, m, fd, r.GetRepeated(), path, key)
		return
	}
	if r.GetType() == nil {
		return
	}
	for _, b := range w.scalarBreakers(fd, r, m.Get(fd), ignoreZero) {
		w.add("rule", l, path, key, b.rule, b.ids, set(b))
	}
	if fd.Enum() != nil && r.GetEnum().GetDefinedOnly() {
		for _, n := range invalidEnumNumbers(fd.Enum()) {
			w.add("enum-number", l, path, key, fmt.Sprintf("enum number %d", n), []string{"enum.defined_only"},
				func(m protoreflect.Message) { m.Set(fd, protoreflect.ValueOfEnum(n)) })
		}
	}
	if sr := r.GetString(); sr.HasPattern() && isResourcePattern(sr.GetPattern()) {
		w.nameShapes(l, fd, sr, m.Get(fd).String(), path, key, ignoreZero, func(v string) func(m protoreflect.Message) {
			return func(m protoreflect.Message) { m.Set(fd, protoreflect.ValueOfString(v)) }
		})
	}
}

// scalarBreakers returns the values that break each rule of a scalar (or
// of a list item or map key or value, with r their rules).
func (w *ruleWalker) scalarBreakers(fd protoreflect.FieldDescriptor, r *validate.FieldRules, base protoreflect.Value, ignoreZero bool) []ruleBreaker {
	var out []ruleBreaker
	switch {
	case r.GetString() != nil:
		out = w.stringBreakers(string(fd.FullName()), r.GetString(), base.String(), ignoreZero)
	case r.GetBytes() != nil:
		br := r.GetBytes()
		if u := unhandledRules(br, "min_len", "max_len"); len(u) > 0 {
			w.problem("%s: unhandled bytes rules %v", fd.FullName(), u)
		}
		if br.HasMinLen() && br.GetMinLen() > 0 && !(ignoreZero && br.GetMinLen() == 1) {
			out = append(out, ruleBreaker{"bytes.min_len", []string{"bytes.min_len"}, protoreflect.ValueOfBytes(make([]byte, br.GetMinLen()-1))})
		}
		if br.HasMaxLen() {
			out = append(out, ruleBreaker{"bytes.max_len", []string{"bytes.max_len"}, protoreflect.ValueOfBytes(make([]byte, br.GetMaxLen()+1))})
		}
	case r.GetInt32() != nil:
		ir := r.GetInt32()
		if u := unhandledRules(ir, "gte", "lte"); len(u) > 0 {
			w.problem("%s: unhandled int32 rules %v", fd.FullName(), u)
		}
		both := ir.HasGte() && ir.HasLte()
		if ir.HasGte() && ir.GetGte() > math.MinInt32 && !(ignoreZero && ir.GetGte()-1 == 0) {
			out = append(out, ruleBreaker{"int32.gte", ruleIDs(both, "int32.gte_lte", "int32.gte"), protoreflect.ValueOfInt32(ir.GetGte() - 1)})
		}
		if ir.HasLte() && ir.GetLte() < math.MaxInt32 && !(ignoreZero && ir.GetLte()+1 == 0) {
			out = append(out, ruleBreaker{"int32.lte", ruleIDs(both, "int32.gte_lte", "int32.lte"), protoreflect.ValueOfInt32(ir.GetLte() + 1)})
		}
	case r.GetInt64() != nil:
		ir := r.GetInt64()
		if u := unhandledRules(ir, "gte", "lte"); len(u) > 0 {
			w.problem("%s: unhandled int64 rules %v", fd.FullName(), u)
		}
		both := ir.HasGte() && ir.HasLte()
		if ir.HasGte() && ir.GetGte() > math.MinInt64 {
			out = append(out, ruleBreaker{"int64.gte", ruleIDs(both, "int64.gte_lte", "int64.gte"), protoreflect.ValueOfInt64(ir.GetGte() - 1)})
			out = append(out, ruleBreaker{"int64.gte", ruleIDs(both, "int64.gte_lte", "int64.gte"), protoreflect.ValueOfInt64(math.MinInt64)})
		}
		if ir.HasLte() && ir.GetLte() < math.MaxInt64 {
			out = append(out, ruleBreaker{"int64.lte", ruleIDs(both, "int64.gte_lte", "int64.lte"), protoreflect.ValueOfInt64(ir.GetLte() + 1)})
		}
	case r.GetEnum() != nil:
		er := r.GetEnum()
		if u := unhandledRules(er, "defined_only", "not_in"); len(u) > 0 {
			w.problem("%s: unhandled enum rules %v", fd.FullName(), u)
		}
		if er.GetDefinedOnly() {
			out = append(out, ruleBreaker{"enum.defined_only", []string{"enum.defined_only"}, protoreflect.ValueOfEnum(maxEnum(fd.Enum()) + 1)})
		}
		for _, n := range er.GetNotIn() {
			out = append(out, ruleBreaker{"enum.not_in", []string{"enum.not_in"}, protoreflect.ValueOfEnum(protoreflect.EnumNumber(n))})
		}
	default:
		w.problem("%s: rules of an unhandled type: %v", fd.FullName(), setRuleFields(r))
	}
	return out
}

func ruleIDs(both bool, ifBoth, otherwise string) []string {
	if both {
		return []string{ifBoth}
	}
	return []string{otherwise}
}

func maxEnum(ed protoreflect.EnumDescriptor) protoreflect.EnumNumber {
	var n protoreflect.EnumNumber
	for i := 0; i < ed.Values().Len(); i++ {
		n = max(n, ed.Values().Get(i).Number())
	}
	return n
}

// invalidEnumNumbers are numbers no value of the enum has (beyond the one
// just past the last, which the defined_only case sends): negative, far
// past the last, and the largest int32.
func invalidEnumNumbers(ed protoreflect.EnumDescriptor) []protoreflect.EnumNumber {
	return []protoreflect.EnumNumber{-1, maxEnum(ed) + 1000, math.MaxInt32}
}

// compiledPatterns caches compiled patterns.
var compiledPatterns = map[string]*regexp.Regexp{}

func compiledPattern(pattern string) *regexp.Regexp {
	re, ok := compiledPatterns[pattern]
	if !ok {
		re = regexp.MustCompile(pattern)
		compiledPatterns[pattern] = re
	}
	return re
}

// stringRulesOK reports whether s satisfies the string rules this generator
// knows.
func stringRulesOK(sr *validate.StringRules, s string) bool {
	n := uint64(utf8.RuneCountInString(s))
	switch {
	case sr.HasMinLen() && n < sr.GetMinLen(), sr.HasMaxLen() && n > sr.GetMaxLen():
		return false
	case sr.HasPattern() && !compiledPattern(sr.GetPattern()).MatchString(s):
		return false
	case sr.HasPrefix() && !strings.HasPrefix(s, sr.GetPrefix()):
		return false
	}
	return true
}

// patternBreakers are candidates for a string that fails a pattern.
var patternBreakers = []string{"!", "!!", " ", "\x01", "Ä", "a b", "--", "/", "a\nb", "\x7f"}

func (w *ruleWalker) stringBreakers(key string, sr *validate.StringRules, base string, ignoreZero bool) []ruleBreaker {
	if u := unhandledRules(sr, "min_len", "max_len", "pattern", "prefix", "email", "uri"); len(u) > 0 {
		w.problem("%s: unhandled string rules %v", key, u)
	}
	var out []ruleBreaker
	str := func(rule string, v string, ids ...string) {
		if v == "" && ignoreZero {
			return
		}
		out = append(out, ruleBreaker{rule, append([]string{rule}, ids...), protoreflect.ValueOfString(v)})
	}
	if sr.HasMinLen() && sr.GetMinLen() > 0 {
		str("string.min_len", strings.Repeat("a", int(sr.GetMinLen())-1))
	}
	if sr.HasMaxLen() {
		pad := "a"
		if r, _ := utf8.DecodeLastRuneInString(base); base != "" {
			pad = string(r)
		}
		v := base
		for utf8.RuneCountInString(v) <= int(sr.GetMaxLen()) {
			v += pad
		}
		str("string.max_len", v)
	}
	if sr.HasPattern() {
		re := compiledPattern(sr.GetPattern())
		found := false
		for _, c := range append([]string{strings.ToUpper(base), base + " "}, patternBreakers...) {
			if c != "" && !re.MatchString(c) {
				str("string.pattern", c)
				found = true
				break
			}
		}
		if !found {
			w.problem("%s: no candidate breaks pattern %s", key, sr.GetPattern())
		}
	}
	if sr.HasPrefix() {
		v := "x" + strings.TrimPrefix(base, sr.GetPrefix())
		if strings.HasPrefix(base, "https://") {
			v = "http://" + strings.TrimPrefix(base, "https://")
		}
		str("string.prefix", v)
	}
	if sr.GetEmail() {
		str("string.email", "not an e-mail address", "string.email_empty")
	}
	if sr.GetUri() {
		str("string.uri", "https://exa mple.org/%zz", "string.uri_empty")
	}
	return out
}

// repeatedRules breaks min_items, max_items, unique and the item rules of
// a list, and sends it with 100,000 items.
func (w *ruleWalker) repeatedRules(l fieldLoc, m protoreflect.Message, fd protoreflect.FieldDescriptor, rr *validate.RepeatedRules, path, key string) {
	if rr == nil {
		return
	}
	if u := unhandledRules(rr, "min_items", "max_items", "unique", "items"); len(u) > 0 {
		w.problem("%s: unhandled repeated rules %v", key, u)
	}
	base := m.Get(fd).List()
	if base.Len() == 0 {
		w.problem("%s: the base request has an empty list at %s; put one valid item in it", key, path)
		return
	}
	setList := func(vals []protoreflect.Value) func(m protoreflect.Message) {
		return func(m protoreflect.Message) {
			m.Clear(fd)
			list := m.Mutable(fd).List()
			for _, v := range vals {
				list.Append(v)
			}
		}
	}
	if rr.HasMinItems() && rr.GetMinItems() > 0 {
		w.add("rule", l, path, key, "repeated.min_items", []string{"repeated.min_items"}, setList(w.items(fd, rr, base, int(rr.GetMinItems())-1, true)))
	}
	if rr.HasMaxItems() {
		w.add("rule", l, path, key, "repeated.max_items", []string{"repeated.max_items"}, setList(w.items(fd, rr, base, int(rr.GetMaxItems())+1, true)))
		if w.wantHuge(key) {
			w.add("huge", l, path, key, "100,000 items", []string{"repeated.max_items"}, setList(w.items(fd, rr, base, 100_000, false)))
		}
	}
	if rr.GetUnique() {
		first := base.Get(0)
		w.add("rule", l, path, key, "repeated.unique", []string{"repeated.unique"}, setList([]protoreflect.Value{first, first}))
	}
	ir := rr.GetItems()
	if ir == nil || ir.GetIgnore() == validate.Ignore_IGNORE_ALWAYS {
		return
	}
	if u := unhandledRules(ir, "string", "enum"); len(u) > 0 {
		w.problem("%s: unhandled item rules %v", key, u)
	}
	elem := path + "[0]"
	setFirst := func(v protoreflect.Value) func(m protoreflect.Message) {
		return func(m protoreflect.Message) { m.Mutable(fd).List().Set(0, v) }
	}
	for _, b := range w.scalarBreakers(fd, ir, base.Get(0), false) {
		w.add("rule", l, elem, key, "items "+b.rule, b.ids, setFirst(b.value))
	}
	if fd.Enum() != nil && ir.GetEnum().GetDefinedOnly() {
		for _, n := range invalidEnumNumbers(fd.Enum()) {
			w.add("enum-number", l, elem, key, fmt.Sprintf("enum number %d", n), []string{"enum.defined_only"}, setFirst(protoreflect.ValueOfEnum(n)))
		}
	}
	if sr := ir.GetString(); sr.HasPattern() && isResourcePattern(sr.GetPattern()) {
		w.nameShapes(l, fd, sr, base.Get(0).String(), elem, key, false, func(v string) func(m protoreflect.Message) {
			return setFirst(protoreflect.ValueOfString(v))
		})
	}
}

// hugeUnderRace are the lists sent with 100,000 items in race builds,
// where validating every list that large would take minutes: a list of
// patterned unique strings, a list of enums, and a map.
// Other builds send every list and map with a limit that large, once.
var hugeUnderRace = []string{
	"alltogether.exchange.v1.Audience.agencies",
	"alltogether.exchange.v1.WatchPlansRequest.niches",
	"alltogether.exchange.v1.Row.categories",
}

// wantHuge reports whether to send the list or map with 100,000 items:
// once per field.
func (w *ruleWalker) wantHuge(key string) bool {
	if w.hugeSeen[key] || badInputRace && !slices.Contains(hugeUnderRace, key) {
		return false
	}
	w.hugeSeen[key] = true
	return true
}

// items returns n items for a list: distinct valid ones as far as the
// rules allow when distinct is set, else copies of the first.
func (w *ruleWalker) items(fd protoreflect.FieldDescriptor, rr *validate.RepeatedRules, base protoreflect.List, n int, distinct bool) []protoreflect.Value {
	first := base.Get(0)
	out := make([]protoreflect.Value, 0, n)
	if distinct {
		switch {
		case fd.Enum() != nil:
			values := fd.Enum().Values()
			for i := 0; i < values.Len() && len(out) < n; i++ {
				num := values.Get(i).Number()
				if !slices.Contains(rr.GetItems().GetEnum().GetNotIn(), int32(num)) {
					out = append(out, protoreflect.ValueOfEnum(num))
				}
			}
		case fd.Kind() == protoreflect.StringKind:
			sr := rr.GetItems().GetString()
			seen := map[string]bool{}
			for v := range itemVariants(first.String()) {
				if len(out) == n {
					break
				}
				if !seen[v] && (sr == nil || stringRulesOK(sr, v)) {
					seen[v] = true
					out = append(out, protoreflect.ValueOfString(v))
				}
			}
		}
	}
	for len(out) < n {
		if fd.Message() != nil && distinct {
			out = append(out, protoreflect.ValueOfMessage(proto.Clone(first.Message().Interface()).ProtoReflect()))
		} else {
			out = append(out, first)
		}
	}
	return out
}

// itemVariants yields strings derived from s, for distinct list items: s
// itself, then s with suffixes and with its end replaced.
func itemVariants(s string) iter.Seq[string] {
	return func(yield func(string) bool) {
		if !yield(s) {
			return
		}
		for _, a := range []string{"abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789"} {
			for _, sep := range []string{"", "-", ".", "_"} {
				for i := 0; i < 2000; i++ {
					if !yield(s + sep + encodeBijective(i, a)) {
						return
					}
				}
			}
			for k := 1; k <= 3 && k <= len(s); k++ {
				for i := 0; i < 2000; i++ {
					if e := encodeBijective(i, a); len(e) == k && !yield(s[:len(s)-k]+e) {
						return
					}
				}
			}
		}
	}
}

// encodeBijective writes i in the digits of alphabet (bijective numbering).
func encodeBijective(i int, alphabet string) string {
	var b []byte
	for i++; i > 0; i = (i - 1) / len(alphabet) {
		b = append([]byte{alphabet[(i-1)%len(alphabet)]}, b...)
	}
	return string(b)
}

// mapRules breaks max_pairs and the key and value rules of a map.
func (w *ruleWalker) mapRules(l fieldLoc, m protoreflect.Message, fd protoreflect.FieldDescriptor, mr *validate.MapRules, path, key string) {
	if mr == nil {
		return
	}
	if u := unhandledRules(mr, "max_pairs", "keys", "values"); len(u) > 0 {
		w.problem("%s: unhandled map rules %v", key, u)
	}
	base := m.Get(fd).Map()
	if base.Len() == 0 {
		w.problem("%s: the base request has an empty map at %s; put one valid entry in it", key, path)
		return
	}
	k0 := firstMapKey(base)
	v0 := base.Get(protoreflect.ValueOfString(k0).MapKey())
	clone := func(v protoreflect.Value) protoreflect.Value {
		if fd.MapValue().Message() != nil {
			return protoreflect.ValueOfMessage(proto.Clone(v.Message().Interface()).ProtoReflect())
		}
		return v
	}
	fill := func(n int) func(m protoreflect.Message) {
		return func(m protoreflect.Message) {
			mp := m.Mutable(fd).Map()
			for i := 0; mp.Len() < n; i++ {
				mp.Set(protoreflect.ValueOfString(fmt.Sprintf("k%d", i)).MapKey(), clone(v0))
			}
		}
	}
	if mr.HasMaxPairs() {
		w.add("rule", l, path, key, "map.max_pairs", []string{"map.max_pairs"}, fill(int(mr.GetMaxPairs())+1))
		if w.wantHuge(key) {
			w.add("huge", l, path, key, "100,000 pairs", []string{"map.max_pairs"}, fill(100_000))
		}
	}
	if kr := mr.GetKeys(); kr != nil {
		if u := unhandledRules(kr, "string"); len(u) > 0 {
			w.problem("%s: unhandled map key rules %v", key, u)
		}
		for _, b := range w.stringBreakers(key+"<key>", kr.GetString(), k0, false) {
			k := b.value.String()
			w.add("rule", l, path+"["+strconv.Quote(k)+"]", key, "keys "+b.rule, b.ids, func(m protoreflect.Message) {
				m.Mutable(fd).Map().Set(protoreflect.ValueOfString(k).MapKey(), clone(v0))
			})
		}
	}
	if vr := mr.GetValues(); vr != nil {
		if u := unhandledRules(vr, "string"); len(u) > 0 {
			w.problem("%s: unhandled map value rules %v", key, u)
		}
		for _, b := range w.stringBreakers(key+"<value>", vr.GetString(), v0.String(), false) {
			w.add("rule", l, path+"["+strconv.Quote(k0)+"]", key, "values "+b.rule, b.ids, func(m protoreflect.Message) {
				m.Mutable(fd).Map().Set(protoreflect.ValueOfString(k0).MapKey(), b.value)
			})
		}
	}
}

// resourceCollections start the patterns of resource-name fields.
var resourceCollections = []string{"agencies/", "referrals/", "workingGroups/", "locations/", "certificates/"}

func isResourcePattern(p string) bool {
	for _, c := range resourceCollections {
		if strings.HasPrefix(p, "^"+c) || strings.HasPrefix(p, "^("+c) {
			return true
		}
	}
	return false
}

// exampleNames are well-formed names, for fields the base leaves empty.
var exampleNames = []string{
	"agencies/ilo", "agencies/ilo/datasets/returns", "referrals/" + strings.Repeat("0", 26), "workingGroups/un-wg", "locations/KH-12",
	"certificates/abc123", "agencies/ilo/focalPoints/" + strings.Repeat("0", 26), "agencies/ilo/plans/" + strings.Repeat("0", 26),
}

// wrongShapes are resource names of the wrong shape derived from a
// well-formed one.
func wrongShapes(v string) []string {
	collection, id, _ := strings.Cut(v, "/")
	other := "datasets"
	if collection == "datasets" {
		other = "agencies"
	}
	return []string{
		"", v + "/", "/" + v, strings.ToUpper(v), v + "/extra", other + "/" + id, id, collection + "/", collection,
		v + " ", " " + v, v + "\n", v + "\x00", v + "?a=b", v + "#x", strings.Replace(v, "/", "//", 1),
		collection + "/../" + id, collection + "/%2F" + id, v + strings.Repeat("a", 300), v[:len(v)-1] + "а", // Cyrillic а
		collection + "/-", collection + "/*", collection + "/" + id + "/" + id, "https://exchange/" + v,
	}
}

// nameShapes sends a resource-name field every wrong shape its pattern
// refuses.
func (w *ruleWalker) nameShapes(l fieldLoc, fd protoreflect.FieldDescriptor, sr *validate.StringRules, base, path, key string, ignoreZero bool, set func(string) func(m protoreflect.Message)) {
	// Every method's own name and parent fields get every shape; a
	// reference inside a body (an audience, a partner) gets them once.
	seenKey := key
	if len(l) == 0 {
		seenKey = w.method + " " + path
	}
	if w.nameSeen[seenKey] {
		return
	}
	w.nameSeen[seenKey] = true
	if base == "" {
		for _, e := range exampleNames {
			if stringRulesOK(sr, e) {
				base = e
				break
			}
		}
	}
	if base == "" {
		w.problem("%s: no well-formed example name for pattern %s", key, sr.GetPattern())
		return
	}
	seen := map[string]bool{}
	for _, v := range wrongShapes(base) {
		if seen[v] || (v == "" && ignoreZero) || stringRulesOK(sr, v) {
			continue
		}
		seen[v] = true
		w.add("name-shape", l, path, key, fmt.Sprintf("name %q", v), nil, set(v))
	}
}

// ruleFields lists the fields with rules (and message CEL rules and
// required oneofs) reachable from a message type, for coverage.
func ruleFields(md protoreflect.MessageDescriptor, out map[string]bool, visiting map[protoreflect.FullName]bool) {
	if visiting[md.FullName()] {
		return
	}
	visiting[md.FullName()] = true
	defer delete(visiting, md.FullName())
	if mr := bufMessageRules(md); mr != nil {
		for _, r := range mr.GetCel() {
			out[string(md.FullName())+"#"+r.GetId()] = true
		}
	}
	for i := 0; i < md.Oneofs().Len(); i++ {
		if or := bufOneofRules(md.Oneofs().Get(i)); or != nil {
			out[string(md.Oneofs().Get(i).FullName())] = true
		}
	}
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		r := bufFieldRules(fd)
		if r != nil && r.GetIgnore() != validate.Ignore_IGNORE_ALWAYS && proto.Size(r) > 0 {
			out[string(fd.FullName())] = true
		}
		switch {
		case fd.IsMap() && fd.MapValue().Message() != nil:
			ruleFields(fd.MapValue().Message(), out, visiting)
		case fd.Message() != nil && !fd.IsMap():
			ruleFields(fd.Message(), out, visiting)
		}
	}
}

// localViolations validates m here and returns its violations as
// "path rule" strings and by path.
func localViolations(v protovalidate.Validator, m proto.Message) (map[string][]string, error) {
	err := v.Validate(m)
	if err == nil {
		return nil, nil
	}
	var verr *protovalidate.ValidationError
	if !errors.As(err, &verr) {
		return nil, err
	}
	out := map[string][]string{}
	for _, x := range verr.Violations {
		p := protovalidate.FieldPathString(x.Proto.GetField())
		out[p] = append(out[p], x.Proto.GetRuleId())
	}
	return out, nil
}

// methodDescriptor finds a method from its full name "/pkg.Service/Method".
func methodDescriptor(full string) (protoreflect.MethodDescriptor, error) {
	svc, name, ok := strings.Cut(strings.TrimPrefix(full, "/"), "/")
	if !ok {
		return nil, fmt.Errorf("bad method name %s", full)
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil, err
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("%s is not a service", svc)
	}
	md := sd.Methods().ByName(protoreflect.Name(name))
	if md == nil {
		return nil, fmt.Errorf("%s has no method %s", svc, name)
	}
	return md, nil
}

// newMessageOf makes an empty message of a registered type.
func newMessageOf(md protoreflect.MessageDescriptor) (proto.Message, error) {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
	if err != nil {
		return nil, err
	}
	return mt.New().Interface(), nil
}

// celBreakers break each message-level CEL rule of the API; the walker
// fails on a rule without one.
var celBreakers = map[string]func(proto.Message){
	"audience.all_or_named": func(m proto.Message) {
		a := m.(*exchangev1.Audience)
		a.AllMembers = true
		if len(a.Agencies) == 0 {
			a.Agencies = []string{"agencies/ilo"}
		}
	},
	"dataset.fiscal_year_start_month": func(m proto.Message) {
		d := m.(*exchangev1.Dataset)
		if d.PeriodType == exchangev1.PeriodType_PERIOD_TYPE_FISCAL_YEAR {
			d.FiscalYearStartMonth = 0
		} else {
			d.FiscalYearStartMonth = 7
		}
	},
	"dataset_schema.unique_keys": func(m proto.Message) {
		s := m.(*exchangev1.DatasetSchema)
		s.Measures[0].Key = s.Categories[0].Key
	},
	"measure.codes": func(m proto.Message) {
		x := m.(*exchangev1.Measure)
		if x.Type == exchangev1.MeasureType_MEASURE_TYPE_CODE {
			x.Codes = nil
		} else {
			x.Codes = []string{"extra"}
		}
	},
	"date_period.end_after_start": func(m proto.Message) {
		p := m.(*exchangev1.DatePeriod)
		p.End = &exchangev1.CalendarDate{Year: p.GetStart().GetYear() - 1, Month: p.GetStart().GetMonth(), Day: p.GetStart().GetDay()}
	},
	"location_ref.subdivision_in_country": func(m proto.Message) {
		l := m.(*exchangev1.LocationRef)
		l.Subdivision = "TH-10"
		if l.Country == "TH" {
			l.Subdivision = "KH-12"
		}
	},
	"location_ref.area_needs_subdivision": func(m proto.Message) {
		l := m.(*exchangev1.LocationRef)
		l.Subdivision, l.Area = "", "Chamkar Mon"
	},
	"plan_budget_line.year_or_period": func(m proto.Message) {
		l := m.(*exchangev1.PlanBudgetLine)
		l.FiscalYear, l.Period = "", nil
	},
	"plan_partner.agency_or_name": func(m proto.Message) {
		p := m.(*exchangev1.PlanPartner)
		p.Agency, p.DisplayName = "", ""
	},
	"consent.override_reason": func(m proto.Message) {
		c := m.(*exchangev1.Consent)
		c.GivenBy, c.OverrideReason = exchangev1.ConsentGiver_CONSENT_GIVER_BEST_INTEREST_OVERRIDE, ""
	},
	"rejection.other_needs_details": func(m proto.Message) {
		r := m.(*exchangev1.Rejection)
		r.Reason, r.Details = exchangev1.RejectionReason_REJECTION_REASON_OTHER, ""
	},
	"working_group.unique_members": func(m proto.Message) {
		g := m.(*exchangev1.WorkingGroup)
		g.Members = append(g.Members, proto.Clone(g.Members[0]).(*exchangev1.Membership))
	},
}
