package main

import (
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"strings"
	"testing"
	"unicode/utf8"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/proto/alltogether/exchange/v1/validfast"
)

// TestGeneratedChecksAnswerAsProtovalidate builds messages of every type in
// the exchange's .proto files from their rules, mostly valid, then breaks
// them at random (a value one past a bound, an undefined enum, a pattern
// missed, a required message left out, a repeated item, a CEL rule's
// condition), and holds validfast's answer to protovalidate's: equal for
// every type validfast translates whole (Fast), and never true where
// protovalidate refuses for the others.
func TestGeneratedChecksAnswerAsProtovalidate(t *testing.T) {
	validator, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	perType := 400
	if testing.Short() {
		perType = 100
	}
	var types []protoreflect.MessageType
	protoregistry.GlobalTypes.RangeMessages(func(mt protoreflect.MessageType) bool {
		d := mt.Descriptor()
		if d.ParentFile().Package() == "alltogether.exchange.v1" && !d.IsMapEntry() {
			types = append(types, mt)
		}
		return true
	})
	if len(types) < 100 {
		t.Fatalf("found %d message types; the registry is not what this test expects", len(types))
	}
	rng := rand.New(rand.NewPCG(7, 22))
	fastTypes, validSeen := 0, 0
	for _, mt := range types {
		name := mt.Descriptor().FullName()
		fast := validfast.Fast(mt.New().Interface())
		if fast {
			fastTypes++
		}
		valid := 0
		for i := range perType {
			f := filler{rng: rng, breakOdds: []float64{0, 0.003, 0.01, 0.03, 0.1}[i%5]}
			m := mt.New()
			f.message(m, 0)
			msg := m.Interface()
			want := validator.Validate(msg) == nil
			got := validfast.Valid(msg)
			if want {
				valid++
			}
			if !fast {
				// A message of this type may hold one that is not
				// translated; when it does not, Valid may pass it.
				if got && !want {
					t.Fatalf("%s: validfast passes what protovalidate refuses (%v):\n%v", name, validator.Validate(msg), msg)
				}
				continue
			}
			if got != want {
				t.Fatalf("%s: validfast answers %v, protovalidate %v (%v) for\n%v", name, got, want, validator.Validate(msg), msg)
			}
			if want && i%10 == 0 {
				// One break at a time: each field present, at any
				// depth, left out in turn.
				clearEach(m, func() {
					want, got := validator.Validate(msg) == nil, validfast.Valid(msg)
					if got != want {
						t.Fatalf("%s with one field left out: validfast answers %v, protovalidate %v (%v) for\n%v", name, got, want, validator.Validate(msg), msg)
					}
				})
			}
		}
		if fast && valid > 0 {
			validSeen++
		}
	}
	// The generator must cover the exchange's messages, not only refuse
	// them, and the filler must reach valid messages, not only broken ones.
	// 166 of 245 today: the others hold an email or URI rule (Agency,
	// Consultant, FocalPoint), a unique() CEL rule (DatasetSchema,
	// ReportTable) or CEL arithmetic (DatePeriod).
	if fastTypes < len(types)*2/3 {
		t.Errorf("only %d of %d message types are fast", fastTypes, len(types))
	}
	if validSeen < fastTypes*9/10 {
		t.Errorf("valid messages were built for only %d of %d fast types", validSeen, fastTypes)
	}
	for _, m := range []proto.Message{&exchangev1.Referral{}, &exchangev1.CreateReferralRequest{}, &exchangev1.BatchCreateReferralsRequest{}, &exchangev1.WriteDatasetRowsRequest{}, &exchangev1.RowWrite{}} {
		if !validfast.Fast(m) {
			t.Errorf("%T is not fast; the write paths depend on it", m)
		}
	}
}

// clearEach clears every field present in m and in the messages it holds,
// one at a time, calls visit, and restores the field.
func clearEach(m protoreflect.Message, visit func()) {
	var present []protoreflect.FieldDescriptor
	m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		present = append(present, fd)
		return true
	})
	for _, fd := range present {
		v := m.Get(fd)
		// A list or map value reads its field: keep a copy to restore.
		switch {
		case fd.IsList():
			saved := m.NewField(fd)
			for i := range v.List().Len() {
				saved.List().Append(v.List().Get(i))
			}
			v = saved
		case fd.IsMap():
			saved := m.NewField(fd)
			v.Map().Range(func(k protoreflect.MapKey, e protoreflect.Value) bool {
				saved.Map().Set(k, e)
				return true
			})
			v = saved
		}
		m.Clear(fd)
		visit()
		m.Set(fd, v)
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				clearEach(v.List().Get(i).Message(), visit)
			}
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			clearEach(v.Message(), visit)
		}
	}
}

// filler builds a message from its rules: values that satisfy them, each
// broken with probability breakOdds.
type filler struct {
	rng       *rand.Rand
	breakOdds float64
}

func (f *filler) breaks() bool { return f.rng.Float64() < f.breakOdds }

func (f *filler) message(m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		rules, _ := proto.GetExtension(fd.Options(), validate.E_Field).(*validate.FieldRules)
		if oneof := fd.ContainingOneof(); oneof != nil && !oneof.IsSynthetic() && m.WhichOneof(oneof) != nil && f.rng.IntN(2) == 0 {
			continue
		}
		set := rules.GetRequired() || f.rng.IntN(4) != 0
		if f.breaks() {
			set = !set
		}
		if !set || (fd.Message() != nil && !fd.IsMap() && depth > 5) {
			continue
		}
		switch {
		case fd.IsList():
			rr := rules.GetRepeated()
			n := f.count(rr.GetMinItems(), rr.GetMaxItems(), rr.HasMaxItems())
			list := m.Mutable(fd).List()
			for range n {
				list.Append(f.value(fd, rr.GetItems(), list.NewElement(), depth))
			}
			if rr.GetUnique() && list.Len() > 0 && f.breaks() {
				list.Append(list.Get(0))
			}
			if list.Len() == 0 {
				m.Clear(fd)
			}
		case fd.IsMap():
			mr := rules.GetMap()
			n := f.count(mr.GetMinPairs(), mr.GetMaxPairs(), mr.HasMaxPairs())
			mp := m.Mutable(fd).Map()
			for range n {
				k := f.value(fd.MapKey(), mr.GetKeys(), protoreflect.Value{}, depth)
				mp.Set(k.MapKey(), f.value(fd.MapValue(), mr.GetValues(), mp.NewValue(), depth))
			}
			if mp.Len() == 0 {
				m.Clear(fd)
			}
		default:
			var fresh protoreflect.Value
			if fd.Message() != nil {
				fresh = m.NewField(fd)
			}
			m.Set(fd, f.value(fd, rules, fresh, depth))
		}
	}
	f.celConditions(m)
}

// celConditions makes the CEL rules' conditions hold or fail often, which
// independent random values would rarely do.
func (f *filler) celConditions(m protoreflect.Message) {
	switch x := m.Interface().(type) {
	case *exchangev1.LocationRef:
		if x.Subdivision != "" && x.Country != "" && f.rng.IntN(2) == 0 {
			x.Subdivision = x.Country + x.Subdivision[2:]
		}
	case *exchangev1.Consent:
		if f.rng.IntN(3) == 0 {
			x.GivenBy = exchangev1.ConsentGiver_CONSENT_GIVER_BEST_INTEREST_OVERRIDE
		}
	}
}

// count picks a number of items: often a bound, sometimes one past it.
func (f *filler) count(lo, hi uint64, hasHi bool) int {
	if !hasHi || hi > 12 {
		hi = max(lo, 3)
		if f.breaks() {
			hi = lo
		}
	}
	n := lo + uint64(f.rng.IntN(int(hi-lo)+1))
	if f.breaks() {
		switch f.rng.IntN(2) {
		case 0:
			if lo > 0 {
				n = lo - 1
			}
		default:
			n = hi + 1
		}
	}
	return int(n)
}

// value makes one value of fd's kind that satisfies rules, unless it
// breaks them.
func (f *filler) value(fd protoreflect.FieldDescriptor, rules *validate.FieldRules, fresh protoreflect.Value, depth int) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if !fresh.IsValid() {
			fresh = protoreflect.ValueOfMessage(dynamicNew(fd))
		}
		if !strings.HasPrefix(string(fd.Message().FullName()), "google.protobuf.") {
			f.message(fresh.Message(), depth+1)
		}
		return fresh
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(f.str(rules.GetString()))
	case protoreflect.BytesKind:
		br := rules.GetBytes()
		n := f.rng.IntN(8)
		if br.HasMaxLen() && f.breaks() {
			n = int(br.GetMaxLen()) + 1
		}
		return protoreflect.ValueOfBytes(make([]byte, n))
	case protoreflect.EnumKind:
		values := fd.Enum().Values()
		n := values.Get(f.rng.IntN(values.Len())).Number()
		if f.breaks() {
			n = protoreflect.EnumNumber(values.Len() + f.rng.IntN(3))
		}
		return protoreflect.ValueOfEnum(n)
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(f.rng.IntN(2) == 0)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(f.rng.Float32())
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(f.rng.Float64())
	}
	lo, hi := int64(-3), int64(2200)
	if r := rules.GetInt32(); r != nil {
		lo, hi = bounds(int64(r.GetGte()), r.HasGte(), int64(r.GetLte()), r.HasLte(), lo, hi)
	}
	if r := rules.GetInt64(); r != nil {
		lo, hi = bounds(r.GetGte(), r.HasGte(), r.GetLte(), r.HasLte(), lo, hi)
	}
	n := lo + f.rng.Int64N(hi-lo+1)
	if f.breaks() {
		n = []int64{lo - 1, hi + 1, 0}[f.rng.IntN(3)]
	}
	switch fd.Kind() {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(n))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(n)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(max(n, 0)))
	default:
		return protoreflect.ValueOfUint64(uint64(max(n, 0)))
	}
}

func bounds(gte int64, hasGte bool, lte int64, hasLte bool, lo, hi int64) (int64, int64) {
	if hasGte {
		lo = gte
	}
	if hasLte {
		hi = lte
	}
	if hi-lo > 5000 {
		hi = lo + 5000
	}
	return lo, hi
}

func dynamicNew(fd protoreflect.FieldDescriptor) protoreflect.Message {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(fd.Message().FullName())
	if err != nil {
		panic(err)
	}
	return mt.New()
}

// str makes a string within a string rule's pattern and lengths, or not.
func (f *filler) str(sr *validate.StringRules) string {
	var s string
	if sr.HasPattern() {
		re, err := syntax.Parse(sr.GetPattern(), syntax.Perl)
		if err != nil {
			panic(err)
		}
		var b strings.Builder
		f.match(&b, re)
		s = b.String()
	} else {
		lo, hi := int(sr.GetMinLen()), 6
		if sr.HasMaxLen() {
			hi = int(sr.GetMaxLen())
		}
		if sr.HasLen() {
			lo, hi = int(sr.GetLen()), int(sr.GetLen())
		}
		n := lo
		switch f.rng.IntN(3) {
		case 0:
			n = hi
		case 1:
			n = lo + f.rng.IntN(min(hi-lo, 8)+1)
		}
		// Letters of two bytes put the rune counts to the test.
		s = strings.Repeat([]string{"a", "é", "ก"}[f.rng.IntN(3)], n)
	}
	if f.breaks() {
		switch f.rng.IntN(5) {
		case 4:
			// One byte changed: a class or a literal missed.
			if len(s) > 0 {
				b := []byte(s)
				b[f.rng.IntN(len(b))] = "-A0_/.a:Z9 "[f.rng.IntN(11)]
				s = string(b)
			}
		case 0:
			s = ""
		case 1:
			s += "é"
		case 2:
			if sr.HasMaxLen() {
				s = strings.Repeat("é", int(sr.GetMaxLen())+1)
			}
		default:
			if len(s) > 0 {
				_, size := utf8.DecodeLastRuneInString(s)
				s = s[:len(s)-size]
			}
		}
	}
	return s
}

// match writes a string that re matches, from few letters so that values
// of different fields often agree (as the CEL rules compare them).
func (f *filler) match(b *strings.Builder, re *syntax.Regexp) {
	switch re.Op {
	case syntax.OpLiteral:
		b.WriteString(string(re.Rune))
	case syntax.OpCharClass:
		// A pair of runes per range; pick among the first two of a
		// range.
		i := 2 * f.rng.IntN(len(re.Rune)/2)
		lo, hi := re.Rune[i], re.Rune[i+1]
		b.WriteRune(lo + rune(f.rng.IntN(int(min(hi-lo, 1))+1)))
	case syntax.OpAnyCharNotNL, syntax.OpAnyChar:
		b.WriteRune('x')
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			f.match(b, sub)
		}
	case syntax.OpAlternate:
		f.match(b, re.Sub[f.rng.IntN(len(re.Sub))])
	case syntax.OpCapture:
		f.match(b, re.Sub[0])
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		lo, hi := re.Min, re.Max
		switch re.Op {
		case syntax.OpStar:
			lo, hi = 0, 3
		case syntax.OpPlus:
			lo, hi = 1, 3
		case syntax.OpQuest:
			lo, hi = 0, 1
		}
		if hi < 0 {
			hi = lo + 3
		}
		// Either bound, or between them.
		n := []int{lo, hi, lo + f.rng.IntN(hi-lo+1)}[f.rng.IntN(3)]
		for range n {
			f.match(b, re.Sub[0])
		}
	case syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText, syntax.OpEmptyMatch, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
	default:
		panic("pattern operator " + re.Op.String())
	}
}

// TestMatchersAnswerAsRegexp holds every pattern's matcher to regexp on
// strings built from the pattern and on every one-byte change of them:
// each byte replaced, dropped or doubled, and one added at each end.
func TestMatchersAnswerAsRegexp(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	written := 0
	for pattern, match := range validfast.Matchers {
		if _, ok := simplePattern(pattern); ok {
			written++
		}
		re := regexp.MustCompile(pattern)
		parsed, err := syntax.Parse(pattern, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		check := func(s string) {
			if got, want := match(s), re.MatchString(s); got != want {
				t.Fatalf("%q on %q: matcher %v, regexp %v", pattern, s, got, want)
			}
		}
		for range 50 {
			var b strings.Builder
			(&filler{rng: rng}).match(&b, parsed)
			s := b.String()
			check(s)
			for i := range len(s) + 1 {
				for _, c := range []byte("-/A0_.a:Z9 é\x00") {
					check(s[:i] + string(c) + s[i:])
					if i < len(s) {
						check(s[:i] + string(c) + s[i+1:])
					}
				}
				if i < len(s) {
					check(s[:i] + s[i+1:])
					check(s[:i] + s[i:i+1] + s[i:])
				}
			}
		}
	}
	if written < len(validfast.Matchers)/2 {
		t.Errorf("only %d of %d patterns have a matcher written for them", written, len(validfast.Matchers))
	}
}

// TestUnknownFindsUnknownFieldsAtAnyDepth plants unknown bytes in one
// message at a time, anywhere in messages of every type built from their
// rules, and requires Unknown to find them, and to find nothing before.
func TestUnknownFindsUnknownFieldsAtAnyDepth(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 13))
	unknown := protowire.AppendVarint(protowire.AppendTag(nil, 9999, protowire.VarintType), 1)
	planted := 0
	protoregistry.GlobalTypes.RangeMessages(func(mt protoreflect.MessageType) bool {
		if mt.Descriptor().ParentFile().Package() != "alltogether.exchange.v1" {
			return true
		}
		for range 10 {
			m := mt.New()
			(&filler{rng: rng}).message(m, 0)
			if validfast.Unknown(m.Interface()) {
				t.Fatalf("%s: Unknown finds unknown fields where none were put:\n%v", mt.Descriptor().FullName(), m.Interface())
			}
			eachMessage(m, func(inner protoreflect.Message) {
				inner.SetUnknown(unknown)
				planted++
				if !validfast.Unknown(m.Interface()) {
					t.Fatalf("%s: Unknown misses unknown fields in a %s inside it:\n%v", mt.Descriptor().FullName(), inner.Descriptor().FullName(), m.Interface())
				}
				inner.SetUnknown(nil)
			})
		}
		return true
	})
	if planted < 1000 {
		t.Fatalf("planted unknown fields only %d times", planted)
	}
}

// eachMessage calls visit with m and every message inside it.
func eachMessage(m protoreflect.Message, visit func(protoreflect.Message)) {
	visit(m)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				eachMessage(v.List().Get(i).Message(), visit)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, e protoreflect.Value) bool {
				eachMessage(e.Message(), visit)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			eachMessage(v.Message(), visit)
		}
		return true
	})
}
