// Package wirewritetest gives the tests of hand-written encoders
// (internal/wirewrite's users) the messages to hold them to protobuf-go's
// marshaller with.
package wirewritetest

import (
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TB is the part of testing.TB EachLeftOut uses.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// EachLeftOut returns full() and, for each of its fields and each field of
// the messages it holds, a copy of full() with that one field left out. It
// fails t if full() leaves a field unset (but those named in unset), so
// that a field added to the message is covered once full sets it.
func EachLeftOut[M proto.Message](t TB, full func() M, unset ...protoreflect.FullName) []M {
	t.Helper()
	out := []M{full()}
	var visit func(path []protoreflect.FieldDescriptor, m protoreflect.Message)
	visit = func(path []protoreflect.FieldDescriptor, m protoreflect.Message) {
		fields := m.Descriptor().Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if slices.Contains(unset, fd.FullName()) {
				continue
			}
			if !m.Has(fd) {
				t.Fatalf("the test's full message leaves %s unset", fd.FullName())
			}
			at := append(append([]protoreflect.FieldDescriptor(nil), path...), fd)
			c := full()
			reached := c.ProtoReflect()
			for _, p := range at[:len(at)-1] {
				reached = reached.Mutable(p).Message()
			}
			reached.Clear(fd)
			out = append(out, c)
			if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() {
				visit(at, m.Get(fd).Message())
			}
		}
	}
	visit(nil, full().ProtoReflect())
	return out
}
