package server

// What one request may cost to validate.
//
// protovalidate evaluates the rules of every item of a list even when the
// list is over its max_items, and builds one violation (about 2 KB with its
// paths) per broken rule: a 2 MB request holding a million empty strings
// took 7.8 s and 2 GB, and its error trailer (36 MB) was more than a
// default client reads. The exchange therefore validates in steps, each
// bounded by the size of the request (at most MaxRecvMsgSize):
//
//  0. Before the request is decoded, the server codec scans its bytes
//     (scanWireBounds, no allocation) and refuses a list or map sent with
//     more items than its bound, so that a million empty strings are never
//     decoded into a slice (request_decoding.go). A message sent in
//     several parts, which decoding merges, is counted whole. The scan
//     also goes into what the rules ignore always, the items of a batch
//     (BatchCreateReferrals, WriteDatasetRows), which the handler
//     validates and answers one by one: there a list over its bound
//     refuses the whole request only when the items beyond the bounds
//     number more than maxExcessInIgnoredItems (1000) over the request,
//     so that an item with 11 languages is still rejected alone and one
//     with 1,900,000 refuses the request ("requests[3].referral.subject.
//     languages: has 1900000 items; at most 10"), as do 10,000 in each of
//     many items. An output-only list (outputOnlyLists), which the
//     exchange never sends over its bound, refuses the request over its
//     bound inside an item too; within it, the codec drops it from the
//     bytes before decoding (output_only.go).
//  1. A walk of the decoded request (protoreflect, no rules evaluated)
//     counts the items of every list and map it reaches. A list or map
//     over the max_items or max_pairs its rule declares (defaultMaxItems
//     when it declares none, as google.protobuf.FieldMask.paths) is
//     refused there, with one violation naming it ("locations: has
//     1000000 items; at most 200"), before protovalidate sees any of its
//     items. The walk also covers messages that were not just decoded (the
//     items of a batch, as each is validated, plans read from IATI) and
//     merged ones. It does not enter what the rules ignore always, and
//     needs no bound there: the scan counted those lists before decoding,
//     and each item is walked when it is validated.
//  2. Go code generated from the same rules (package validfast) passes a
//     request that breaks none of them without protovalidate's
//     reflection: 0.26 µs for a referral against 7.9–10 µs
//     (BenchmarkReferralValidation). It answers false for a request that
//     breaks one, or that holds a rule the generator does not translate
//     (internal/cmd/protoc-gen-validfast); such a request goes on to
//     protovalidate, which judges it and words the refusal. A test holds
//     the two to the same answers on generated requests. For a request
//     whose every list and map declares its bound (validfast.Bounded, all
//     but those holding a FieldMask), this check comes before the walk of
//     step 1, which it makes needless when it passes: it compares each
//     list's length with its bound before reading any item, so its cost
//     too is bounded by the request's size.
//  3. A request of at most fullValidationItems items is validated by
//     protovalidate in one pass, as before: its violations are few.
//  4. A larger request is first validated fail-fast (one violation at
//     most). Only when it fails are its violations collected message by
//     message: each message of the request is validated on its own (a
//     filter keeps protovalidate out of its children), so that no more
//     violations are held at once than one message's own fields make.
//     The violations found are the same as in one pass; they come message
//     by message (outer fields first), maps in key order.
//
// However many violations there are, a refusal lists at most
// maxReportedViolations of them, within maxReportedViolationBytes, each
// field path and description cut at maxViolationTextBytes; its message
// names the first and how many more there are, so the error trailer stays
// a few KiB. The answer to a batch, whose items are validated one by one,
// lists their violations within one budget for the whole batch
// (batch_violations.go).

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/alltogether/exchange/proto/alltogether/exchange/v1/validfast"
)

const (
	// defaultMaxItems bounds a list or map whose rules declare no bound.
	// The exchange's own messages declare one on every list and map (a
	// test holds them to it); only google.protobuf.FieldMask.paths, whose
	// message carries no rules, relies on this.
	defaultMaxItems = 100
	// fullValidationItems is the most list items and map entries a request
	// may hold and still be validated by protovalidate in one pass.
	fullValidationItems = 1000
	// maxReportedViolations is the most field violations a refusal lists.
	maxReportedViolations = 100
	// maxReportedViolationBytes bounds the text of the violations a refusal
	// lists (field, description and rule id, summed).
	maxReportedViolationBytes = 8 << 10
	// maxViolationTextBytes is where a field path or a description is cut
	// (a map key in a path can be as long as the request).
	maxViolationTextBytes = 256
)

// validate checks a request against the protovalidate rules in its .proto
// file, at a cost bounded by the request's size (see the top of this
// file).
func (s *Server) validate(req any) error {
	msg, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	report, err := s.violations(msg, false)
	if err != nil || report.total == 0 {
		return err
	}
	return report.status()
}

// violations checks msg as validate does and returns what it found (none
// when report.total is 0), or an internal error when validation could not
// run. With firstOnly, protovalidate stops at the first violated rule
// (the walk still reports every list over its bound, which it finds for
// free): a batch checks its items so once its answer lists all the
// violations it may (batch_violations.go).
func (s *Server) violations(msg proto.Message, firstOnly bool) (violationReport, error) {
	// Where every list declares its bound, the generated check finds any
	// list over it, at no more cost than the walk (step 2 below).
	bounded := validfast.Bounded(msg)
	if bounded && validfast.Valid(msg) {
		return violationReport{}, nil
	}
	walk := requestWalk{}
	// The path grows only as the walk goes into messages that hold lists:
	// none but the row of an item of WriteDatasetRows, validated one by
	// one, 10,000 in a request. Room for a few levels up front: a path
	// appended to from nil is a new slice for every message entered (three
	// for each referral of a batch).
	walk.message(msg.ProtoReflect(), make([]pathElement, 0, 4))
	if walk.report.total > 0 {
		return walk.report, nil
	}
	// The code generated from the same rules passes most valid requests
	// without protovalidate's reflection; whatever it does not pass,
	// protovalidate judges and words (proto/.../v1/validfast).
	if !bounded && validfast.Valid(msg) {
		return violationReport{}, nil
	}
	if walk.items <= fullValidationItems && !firstOnly {
		return s.violationsInOnePass(msg)
	}
	err := s.validator.Validate(msg, protovalidate.WithFailFast())
	if err == nil {
		return violationReport{}, nil
	}
	var verr *protovalidate.ValidationError
	if !errors.As(err, &verr) {
		return violationReport{}, s.validationFailed(err)
	}
	if firstOnly {
		return reportOf(verr, msg.ProtoReflect().Descriptor()), nil
	}
	return s.violationsMessageByMessage(msg)
}

// validationFailed logs why validation could not run and returns the
// INTERNAL answer.
func (s *Server) validationFailed(err error) error {
	s.log.Error("validation failed to run", "error", err.Error())
	return status.Error(codes.Internal, "internal error; the exchange logged the cause")
}

// violationsInOnePass validates a small request with one protovalidate
// call.
func (s *Server) violationsInOnePass(msg proto.Message) (violationReport, error) {
	err := s.validator.Validate(msg)
	if err == nil {
		return violationReport{}, nil
	}
	var verr *protovalidate.ValidationError
	if !errors.As(err, &verr) {
		return violationReport{}, s.validationFailed(err)
	}
	return reportOf(verr, msg.ProtoReflect().Descriptor()), nil
}

// violationsMessageByMessage collects the violations of a large invalid
// request one message at a time, keeping at most the reported ones.
func (s *Server) violationsMessageByMessage(msg proto.Message) (violationReport, error) {
	var report violationReport
	var failed error
	walk := requestWalk{visit: func(m protoreflect.Message, path []pathElement) {
		if failed != nil {
			return
		}
		node := m.Interface()
		only := protovalidate.FilterFunc(func(in protoreflect.Message, _ protoreflect.Descriptor) bool {
			return in.Interface() == node
		})
		err := s.validator.Validate(node, protovalidate.WithFilter(only))
		if err == nil {
			return
		}
		var verr *protovalidate.ValidationError
		if !errors.As(err, &verr) {
			failed = err
			return
		}
		prefix := formatPath(path)
		for _, v := range verr.Violations {
			field := protovalidate.FieldPathString(v.Proto.GetField())
			switch {
			case prefix == "":
			case field == "":
				field = prefix
			default:
				field = prefix + "." + field
			}
			report.add(field, describeViolation(v, m.Descriptor()), v.Proto.GetRuleId())
		}
	}}
	walk.message(msg.ProtoReflect(), make([]pathElement, 0, 16))
	if failed != nil {
		return violationReport{}, s.validationFailed(failed)
	}
	if report.total == 0 {
		// Fail-fast validation found a violation that no message's own
		// rules show: validation is not what this file assumes.
		s.log.Error("validation message by message found nothing that validation in one pass refused", "message", string(msg.ProtoReflect().Descriptor().FullName()))
		return violationReport{}, status.Error(codes.Internal, "internal error; the exchange logged the cause")
	}
	return report, nil
}

// reportOf gathers the violated rules of a message of type root, each
// with the field it concerns, within the bounds of violationReport.
func reportOf(verr *protovalidate.ValidationError, root protoreflect.MessageDescriptor) violationReport {
	var report violationReport
	for _, v := range verr.Violations {
		report.add(protovalidate.FieldPathString(v.Proto.GetField()), describeViolation(v, root), v.Proto.GetRuleId())
	}
	return report
}

// violationReport gathers a refusal's violations: it counts them all and
// keeps the first maxReportedViolations that fit maxReportedViolationBytes.
type violationReport struct {
	kept  []*errdetails.BadRequest_FieldViolation
	bytes int
	total int
}

// add records one violation.
func (r *violationReport) add(field, description, rule string) {
	r.total++
	if len(r.kept) >= maxReportedViolations {
		return
	}
	field, description = cutText(field), cutText(description)
	size := len(field) + len(description) + len(rule)
	if len(r.kept) > 0 && r.bytes+size > maxReportedViolationBytes {
		return
	}
	r.bytes += size
	r.kept = append(r.kept, &errdetails.BadRequest_FieldViolation{Field: field, Description: description, Reason: rule})
}

// message names the first violation and how many more there are.
func (r *violationReport) message() string {
	first := r.kept[0]
	msg := "invalid request: " + first.Field + ": " + first.Description
	if first.Field == "" {
		msg = "invalid request: " + first.Description
	}
	if r.total > 1 {
		msg += fmt.Sprintf(" (and %d more)", r.total-1)
	}
	return msg
}

// status is the INVALID_ARGUMENT refusal: its message names the first
// violation and how many more there are; its BadRequest lists those kept.
func (r *violationReport) status() error {
	msg := r.message()
	st, err := status.New(codes.InvalidArgument, msg).WithDetails(
		&errdetails.ErrorInfo{Reason: "INVALID_ARGUMENT", Domain: ErrorDomain}, &errdetails.BadRequest{FieldViolations: r.kept})
	if err != nil {
		return status.Error(codes.InvalidArgument, msg)
	}
	return st.Err()
}

// cutText cuts s to maxViolationTextBytes on a rune boundary, marking the
// cut.
func cutText(s string) string { return cutTextAt(s, maxViolationTextBytes) }

// cutTextAt cuts s to limit bytes on a rune boundary, marking the cut.
func cutTextAt(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := limit - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// pathElement is one step of a field path: a field's name and, inside a
// list or map, the subscript as protovalidate prints it ("[3]",
// `["key"]`). The subscript of a list item may be given as item instead,
// the index plus one, so that it is printed only when the path is.
type pathElement struct {
	name, subscript string
	item            int
}

// formatPath prints a path as protovalidate.FieldPathString does.
func formatPath(path []pathElement) string {
	var b strings.Builder
	for i, e := range path {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(e.name)
		b.WriteString(e.subscript)
		if e.item > 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(e.item - 1))
			b.WriteByte(']')
		}
	}
	return b.String()
}

// requestWalk walks a request's messages as protovalidate would reach
// them (it does not enter what a rule says to ignore always), counting
// list items and map entries and refusing lists and maps over their
// bound. With visit set it calls it for every message it reaches, outer
// messages first, list items in order and map entries in key order;
// without, it goes only into the messages that can hold lists (it has
// nothing to count in the others, the values of a row's map of measures
// for one).
type requestWalk struct {
	visit  func(m protoreflect.Message, path []pathElement)
	items  int
	report violationReport
}

// message walks m, found at path.
func (w *requestWalk) message(m protoreflect.Message, path []pathElement) {
	if w.visit != nil {
		w.visit(m, path)
	}
	for _, f := range boundsOf(m.Descriptor()).fields {
		// Without visit, messages that hold no lists have nothing to count.
		enter := f.enter && (f.scan || w.visit != nil)
		// A singular message the walk does not enter has nothing to
		// count: skip it before asking whether it is set, which costs
		// a reflective read of the field.
		if f.ignored || (!f.counted && !enter) || !m.Has(f.desc) {
			continue
		}
		name := string(f.desc.Name())
		switch {
		case f.desc.IsList():
			list := m.Get(f.desc).List()
			n := list.Len()
			w.items += n
			if n > f.max {
				w.report.add(formatPath(append(path, pathElement{name: name})),
					fmt.Sprintf("has %d items; at most %d", n, f.max), "repeated.max_items")
				continue
			}
			if !enter {
				continue
			}
			for i := range n {
				w.message(list.Get(i).Message(), append(path, pathElement{name: name, item: i + 1}))
			}
		case f.desc.IsMap():
			entries := m.Get(f.desc).Map()
			n := entries.Len()
			w.items += n
			if n > f.max {
				w.report.add(formatPath(append(path, pathElement{name: name})),
					fmt.Sprintf("has %d entries; at most %d", n, f.max), "map.max_pairs")
				continue
			}
			if !enter {
				continue
			}
			keys := make([]protoreflect.MapKey, 0, n)
			entries.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k)
				return true
			})
			slices.SortFunc(keys, compareMapKeys)
			for _, k := range keys {
				w.message(entries.Get(k).Message(), append(path, pathElement{name: name, subscript: "[" + mapKeyText(k) + "]"}))
			}
		case enter:
			w.message(m.Get(f.desc).Message(), append(path, pathElement{name: name}))
		}
	}
}

// compareMapKeys orders map keys of one map (all of one kind).
func compareMapKeys(a, b protoreflect.MapKey) int {
	switch av := a.Interface().(type) {
	case string:
		return cmp.Compare(av, b.String())
	case bool:
		return cmp.Compare(strconv.FormatBool(av), strconv.FormatBool(b.Bool()))
	case int32, int64:
		return cmp.Compare(a.Int(), b.Int())
	default:
		return cmp.Compare(a.Uint(), b.Uint())
	}
}

// mapKeyText prints a map key as protovalidate.FieldPathString does.
func mapKeyText(k protoreflect.MapKey) string {
	switch v := k.Interface().(type) {
	case string:
		return strconv.Quote(v)
	case bool:
		return strconv.FormatBool(v)
	case int32, int64:
		return strconv.FormatInt(k.Int(), 10)
	default:
		return strconv.FormatUint(k.Uint(), 10)
	}
}

// messageBounds lists the fields of a message that the walk looks at:
// lists, maps and messages.
type messageBounds struct {
	fields []fieldBound
	// byNumber maps a field number to its index in fields plus one (0
	// for none); its length is the largest number plus one.
	byNumber []int
	// farNumbers holds the fields numbered from maxIndexedNumber on.
	farNumbers map[protoreflect.FieldNumber]int
	// holdsLists says whether the message, or one it carries, has a list
	// or map (what a rule ignores always included, which the scan looks
	// at too).
	holdsLists bool
}

// index returns the index in fields of the field numbered num, or -1.
func (b *messageBounds) index(num protoreflect.FieldNumber) int {
	if int(num) < len(b.byNumber) {
		return b.byNumber[num] - 1
	}
	if i, ok := b.farNumbers[num]; ok {
		return i
	}
	return -1
}

// maxIndexedNumber bounds the field numbers messageBounds indexes by
// number.
const maxIndexedNumber = 1024

// fieldBound is one field the walk or the scan looks at.
type fieldBound struct {
	desc protoreflect.FieldDescriptor
	// max is the most items or entries of a list or map.
	max int
	// ignored says a rule ignores the field always: the walk skips it,
	// and the scan counts its lists against maxExcessInIgnoredItems.
	ignored bool
	// enter says whether the walk goes into the field's messages: it is
	// a message (or a list or map of them) that no rule says to ignore
	// always.
	enter bool
	// scan says whether scanWireBounds goes into them: they hold lists.
	scan bool
	// child is the bounds of the field's messages (its map's values),
	// when scan is set.
	child *messageBounds
	// scanIgnored says the scan goes into them as into what a rule
	// ignores always: the field, or its items or values, are.
	scanIgnored bool
	// counted says the field is a list or map.
	counted bool
	// outputOnly says the field is one of outputOnlyLists, which the
	// exchange never sends over its bound: the scan refuses the whole
	// request for one over it, inside what a rule ignores always too.
	outputOnly bool
}

// messageOf returns the message type of a field's messages (a map's
// values), or nil when it carries none.
func messageOf(fd protoreflect.FieldDescriptor) protoreflect.MessageDescriptor {
	if fd.IsMap() {
		return fd.MapValue().Message()
	}
	return fd.Message()
}

// boundsCache holds each message type's bounds, read once from its
// descriptor: protoreflect.FullName to *messageBounds.
var boundsCache sync.Map

// boundsOf returns the bounds of a message type.
func boundsOf(md protoreflect.MessageDescriptor) *messageBounds {
	if b, ok := boundsCache.Load(md.FullName()); ok {
		return b.(*messageBounds)
	}
	build := boundsBuild{building: map[protoreflect.FullName]*messageBounds{}, finished: map[protoreflect.FullName]*messageBounds{}}
	b := buildBounds(md, &build)
	// Cached only now, all together: a message's bounds reach those of
	// the messages it carries (fieldBound.child), and in a cycle one may
	// finish while another is still being built, which no other
	// goroutine may see.
	for name, finished := range build.finished {
		boundsCache.Store(name, finished)
	}
	return b
}

// boundsBuild is one build of bounds by boundsOf: the message types under
// construction, so that a message that carries itself is built once, and
// those finished, which boundsOf caches at the end.
type boundsBuild struct {
	building, finished map[protoreflect.FullName]*messageBounds
}

// buildBounds reads the bounds of md and of the messages it carries.
func buildBounds(md protoreflect.MessageDescriptor, build *boundsBuild) *messageBounds {
	if b, ok := boundsCache.Load(md.FullName()); ok {
		return b.(*messageBounds)
	}
	if b, ok := build.finished[md.FullName()]; ok {
		return b
	}
	if b, ok := build.building[md.FullName()]; ok {
		return b
	}
	b := &messageBounds{}
	build.building[md.FullName()] = b
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		f, ok := boundOf(fd)
		if !ok {
			continue
		}
		if fd.IsList() || fd.IsMap() {
			b.holdsLists = true
		}
		switch n := int(fd.Number()); {
		case n >= maxIndexedNumber:
			if b.farNumbers == nil {
				b.farNumbers = map[protoreflect.FieldNumber]int{}
			}
			b.farNumbers[fd.Number()] = len(b.fields)
		case n >= len(b.byNumber):
			b.byNumber = append(b.byNumber, make([]int, n+1-len(b.byNumber))...)
			fallthrough
		default:
			b.byNumber[n] = len(b.fields) + 1
		}
		b.fields = append(b.fields, f)
	}
	// A message carrying one still under construction (itself) is taken
	// to hold lists.
	for i, f := range b.fields {
		child := messageOf(f.desc)
		if child == nil {
			continue
		}
		_, unfinished := build.building[child.FullName()]
		if cb := buildBounds(child, build); cb.holdsLists || unfinished {
			b.fields[i].scan, b.fields[i].child = true, cb
			b.holdsLists = true
		}
	}
	delete(build.building, md.FullName())
	build.finished[md.FullName()] = b
	return b
}

// boundOf reads a field's bound from its rules; ok is false for a field
// neither the walk nor the scan need look at (a single scalar).
func boundOf(fd protoreflect.FieldDescriptor) (fieldBound, bool) {
	rules, _ := protovalidate.ResolveFieldRules(fd)
	f := fieldBound{desc: fd, max: defaultMaxItems, counted: fd.IsList() || fd.IsMap(),
		ignored: rules.GetIgnore() == validate.Ignore_IGNORE_ALWAYS, outputOnly: outputOnlyLists[fd.FullName()]}
	itemsIgnored := false
	switch {
	case fd.IsList():
		if r := rules.GetRepeated(); r.HasMaxItems() {
			f.max = int(min(r.GetMaxItems(), uint64(maxInt)))
		}
		itemsIgnored = rules.GetRepeated().GetItems().GetIgnore() == validate.Ignore_IGNORE_ALWAYS
	case fd.IsMap():
		if r := rules.GetMap(); r.HasMaxPairs() {
			f.max = int(min(r.GetMaxPairs(), uint64(maxInt)))
		}
		itemsIgnored = rules.GetMap().GetValues().GetIgnore() == validate.Ignore_IGNORE_ALWAYS
	case fd.Message() == nil:
		return fieldBound{}, false
	}
	f.enter = messageOf(fd) != nil && !f.ignored && !itemsIgnored
	f.scanIgnored = f.ignored || itemsIgnored
	return f, true
}

// maxInt is the largest int.
const maxInt = int(^uint(0) >> 1)

// maxScanDepth is how deep scanWireBounds follows nested messages; the
// exchange's requests nest a few levels.
const maxScanDepth = 32

// maxExcessInIgnoredItems is how many list items and map entries the
// lists and maps inside what a rule ignores always (the items of a batch,
// each validated and answered on its own) may hold beyond their own
// bounds, summed over the whole request, before the whole request is
// refused from its bytes. It leaves room for ordinary mistakes, which
// the item's own validation answers (two languages too many in every
// referral of a full batch), and none for a million empty strings: the
// bound caps what decoding such a request can cost at what a request
// whose items all keep their bounds costs.
const maxExcessInIgnoredItems = 1000

// scanWireBounds scans b, an encoding of a message of type md, before it
// is decoded, and reports to report each list or map sent with more
// items (map entries as sent) than its bound, in the order and with the
// paths of requestWalk. It stops at bytes that are not a valid encoding,
// which decoding then refuses.
//
// It counts what decoding would build: a singular message sent in
// several parts, which decoding merges, is counted as one (its lists'
// parts added up), and a member of a oneof is counted whatever member
// comes later (a later one would replace it, so the count can only be
// higher than what decoding keeps).
//
// It goes into what a rule ignores always too, which the walk after
// decoding leaves alone: there a list or map over its bound is not
// refused (the item it is in is answered on its own), but the items
// beyond the bounds are added up, and when they are more than
// maxExcessInIgnoredItems in all the request is refused whole, each such
// list and map reported as any other. A second scan, made only then,
// reports them.
//
// It allocates nothing but the paths of what it reports.
func scanWireBounds(b []byte, md protoreflect.MessageDescriptor, report *violationReport) {
	var chain [maxScanDepth + 1]protoreflect.FieldNumber
	path := make([]pathElement, 0, 16)
	s := wireScan{report: report}
	bounds := boundsOf(md)
	s.message(b, chain[:0], bounds, path, false, 0)
	if s.excess > maxExcessInIgnoredItems {
		*report = violationReport{}
		s = wireScan{report: report, reportIgnored: true}
		s.message(b, chain[:0], bounds, path, false, 0)
	}
}

// wireScan is one scan of a request's bytes by scanWireBounds.
type wireScan struct {
	report *violationReport
	// excess counts the items of lists and maps inside what a rule
	// ignores always beyond their own bounds.
	excess int
	// reportIgnored says to report the lists and maps over their bounds
	// inside what a rule ignores always too: the request is refused.
	reportIgnored bool
	// stop ends the scan: the bytes are not a valid encoding, or excess
	// is over maxExcessInIgnoredItems (and the second scan will report).
	stop bool
}

// message scans a message whose type has bounds, found at path; ignored
// says a rule ignores it always (it is in an item of a batch).
//
// The message may have been sent in parts: it is every occurrence of the
// singular message fields numbered chain, one inside the other, starting
// in anchor (the bytes of the request, of a list item or of a map value,
// each sent whole); with an empty chain, anchor is the message. (Anchor
// and chain are two parameters, not a struct, so that the chain's array
// stays on the stack.)
func (s *wireScan) message(anchor []byte, chain []protoreflect.FieldNumber, bounds *messageBounds, path []pathElement, ignored bool, depth int) {
	if !bounds.holdsLists || depth > maxScanDepth || s.stop {
		return
	}
	// counts holds, for each list and map, its items; for each singular
	// message the scan goes into, how often it was sent, and once holds
	// its bytes (the last occurrence's).
	var countsOnStack [32]int
	var onceOnStack [32][]byte
	var counts []int
	var once [][]byte
	if len(bounds.fields) <= len(countsOnStack) {
		counts, once = countsOnStack[:len(bounds.fields)], onceOnStack[:len(bounds.fields)]
	} else {
		counts, once = make([]int, len(bounds.fields)), make([][]byte, len(bounds.fields))
	}
	// Count the items of each list and map: the loop a million empty
	// strings go through, kept to a tag, a length and an index. A message
	// sent whole (no chain) is its anchor; only one reached by a chain
	// needs a partReader, whose array of readers costs zeroing at each
	// message.
	if len(chain) == 0 {
		if !countPart(anchor, bounds, counts, once) {
			s.stop = true
			return
		}
	} else {
		for parts := (partReader{anchor: anchor}); ; {
			part, ok := parts.next(chain)
			if !ok {
				if parts.failed {
					s.stop = true
					return
				}
				break
			}
			if !countPart(part, bounds, counts, once) {
				s.stop = true
				return
			}
		}
	}
	for i, f := range bounds.fields {
		if s.stop {
			return
		}
		inIgnored := (ignored || f.ignored) && !f.outputOnly
		if f.counted && counts[i] > f.max {
			if !inIgnored || s.reportIgnored {
				s.reportOver(f, counts[i], append(path, pathElement{name: string(f.desc.Name())}))
				continue
			}
			if s.excess += counts[i] - f.max; s.excess > maxExcessInIgnoredItems {
				s.stop = true
				return
			}
		}
		if !f.scan || f.counted && counts[i] == 0 {
			continue
		}
		childIgnored := ignored || f.scanIgnored
		if !f.counted {
			name := string(f.desc.Name())
			switch counts[i] {
			case 0:
				// Not sent: nothing in it to count.
			case 1:
				// Sent once, whole: its bytes anchor its own chains, as a
				// list item's do, and this message is not read again to
				// find them.
				s.message(once[i], chain[len(chain):], f.child,
					append(path, pathElement{name: name}), childIgnored, depth+1)
			default:
				// Each occurrence of the field in each part of this
				// message is a part of the field's message.
				s.message(anchor, append(chain, f.desc.Number()), f.child,
					append(path, pathElement{name: name}), childIgnored, depth+1)
			}
			continue
		}
		// Each item and map value is sent whole: it anchors its own
		// chains, after this message's in the same array.
		whole := chain[len(chain):]
		item := 0
		if len(chain) == 0 {
			s.items(anchor, f, path, childIgnored, depth, whole, &item)
			continue
		}
		for parts := (partReader{anchor: anchor}); ; {
			part, ok := parts.next(chain)
			if !ok {
				break
			}
			s.items(part, f, path, childIgnored, depth, whole, &item)
		}
	}
}

// countPart adds to counts what one part of a message of bounds holds:
// the items of each list and map, and how often each singular message
// the scan goes into was sent (once keeping its bytes). It is false at
// bytes that are not a valid encoding.
func countPart(part []byte, bounds *messageBounds, counts []int, once [][]byte) bool {
	for r := (wireReader{rest: part}); ; {
		num, typ, value, ok := r.next()
		if !ok {
			return !r.failed
		}
		if i := bounds.index(num); i >= 0 {
			switch f := &bounds.fields[i]; {
			case f.counted:
				counts[i] += wireItems(f.desc, typ, value)
			case f.scan && typ == protowire.BytesType:
				counts[i]++
				once[i] = value
			}
		}
	}
}

// items scans the items (or map values) of the list or map f found in one
// part of a message at path, numbering them on from *item; ignored says a
// rule ignores them always. Each is sent whole: it anchors its own chains,
// at whole (the chain's array after the message's own).
func (s *wireScan) items(part []byte, f fieldBound, path []pathElement, ignored bool, depth int, whole []protoreflect.FieldNumber, item *int) {
	name := string(f.desc.Name())
	for r := (wireReader{rest: part}); ; {
		num, typ, value, ok := r.next()
		if !ok {
			return
		}
		if num != f.desc.Number() || typ != protowire.BytesType {
			continue
		}
		if f.desc.IsList() {
			*item++
			s.message(value, whole, f.child, append(path, pathElement{name: name, item: *item}), ignored, depth+1)
		} else if key, entry := wireMapEntry(f.desc, value); entry != nil {
			s.message(entry, whole, f.child,
				append(path, pathElement{name: name, subscript: "[" + key + "]"}), ignored, depth+1)
		}
	}
}

// reportOver reports the list or map f, at path, sent with n items.
func (s *wireScan) reportOver(f fieldBound, n int, path []pathElement) {
	if f.desc.IsMap() {
		s.report.add(formatPath(path), fmt.Sprintf("has %d entries; at most %d", n, f.max), "map.max_pairs")
	} else {
		s.report.add(formatPath(path), fmt.Sprintf("has %d items; at most %d", n, f.max), "repeated.max_items")
	}
}

// partReader reads the parts of a message (see wireScan.message) one by
// one, in the order decoding merges them. It holds the anchor, not the
// chain, which next is given each time: stored here, the chain's array
// would escape to the heap.
type partReader struct {
	anchor []byte
	// readers[i] reads a part of the message reached by chain[:i].
	readers [maxScanDepth]wireReader
	level   int
	started bool
	// failed says the bytes were not a valid encoding.
	failed bool
}

// next returns the next part of the message reached by chain; ok is
// false after the last or at bytes that are not a valid encoding.
func (p *partReader) next(chain []protoreflect.FieldNumber) (part []byte, ok bool) {
	if !p.started {
		p.started = true
		if len(chain) == 0 {
			return p.anchor, true
		}
		if len(chain) > len(p.readers) {
			return nil, false
		}
		p.readers[0] = wireReader{rest: p.anchor}
	} else if len(chain) == 0 {
		return nil, false
	}
	for p.level >= 0 {
		num, typ, value, ok := p.readers[p.level].next()
		if !ok {
			if p.readers[p.level].failed {
				p.failed = true
				return nil, false
			}
			p.level--
			continue
		}
		if num != chain[p.level] || typ != protowire.BytesType {
			continue
		}
		if p.level == len(chain)-1 {
			return value, true
		}
		p.level++
		p.readers[p.level] = wireReader{rest: value}
	}
	return nil, false
}

// wireReader reads the fields of an encoded message one by one.
type wireReader struct {
	rest []byte
	// failed says the bytes were not a valid encoding.
	failed bool
}

// next returns the next field: its number, wire type and, for a
// length-delimited one, its value without the length; ok is false at the
// end or at bytes that are not a valid encoding.
func (r *wireReader) next() (num protoreflect.FieldNumber, typ protowire.Type, value []byte, ok bool) {
	if len(r.rest) == 0 {
		return 0, 0, nil, false
	}
	num, typ, n := protowire.ConsumeTag(r.rest)
	if n < 0 {
		r.failed = true
		return 0, 0, nil, false
	}
	r.rest = r.rest[n:]
	if typ == protowire.BytesType {
		value, n = protowire.ConsumeBytes(r.rest)
	} else {
		n = protowire.ConsumeFieldValue(num, typ, r.rest)
	}
	if n < 0 {
		r.failed = true
		return 0, 0, nil, false
	}
	r.rest = r.rest[n:]
	return num, typ, value, true
}

// wireItems is how many items of a list or entries of a map one encoded
// field value carries: one, or every element of a packed list.
func wireItems(fd protoreflect.FieldDescriptor, typ protowire.Type, value []byte) int {
	if !fd.IsList() || typ != protowire.BytesType || fd.Kind() == protoreflect.StringKind ||
		fd.Kind() == protoreflect.BytesKind || fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
		return 1
	}
	switch fd.Kind() {
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return len(value) / 4
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return len(value) / 8
	}
	n := 0 // varints: one ends at each byte without the continuation bit
	for _, c := range value {
		if c < 0x80 {
			n++
		}
	}
	return n
}

// wireMapEntry reads an encoded map entry: its key, printed as in a field
// path, and its value's bytes (nil when the value is not a message sent).
func wireMapEntry(fd protoreflect.FieldDescriptor, b []byte) (key string, value []byte) {
	key = `""`
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return key, value
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			k, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return key, value
			}
			key, b = strconv.Quote(string(k)), b[n:]
		case num == 1 && typ == protowire.VarintType:
			k, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return key, value
			}
			b = b[n:]
			switch fd.MapKey().Kind() {
			case protoreflect.BoolKind:
				key = strconv.FormatBool(k != 0)
			case protoreflect.Sint32Kind, protoreflect.Sint64Kind:
				key = strconv.FormatInt(protowire.DecodeZigZag(k), 10)
			case protoreflect.Int32Kind:
				key = strconv.FormatInt(int64(int32(k)), 10)
			case protoreflect.Int64Kind:
				key = strconv.FormatInt(int64(k), 10)
			default:
				key = strconv.FormatUint(k, 10)
			}
		case num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return key, value
			}
			value, b = v, b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return key, value
			}
			b = b[n:]
		}
	}
	return key, value
}
