package server

import (
	"encoding/json"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// planBookkeeping are the Plan fields a diff leaves out: they change at
// every version and say nothing about the plan.
var planBookkeeping = map[protoreflect.Name]bool{
	"name": true, "owner": true, "version": true, "create_time": true, "update_time": true, "etag": true,
}

// diffPlans lists the fields that differ from a to b, in field order.
// Message fields (budget, periods, audience) are compared field by field
// one level down, so that a change of the total shows as
// "budget.total_amount" rather than as the whole budget; lists are
// compared whole and also report the elements added and removed.
func diffPlans(a, b *exchangev1.Plan) []*exchangev1.PlanFieldChange {
	var out []*exchangev1.PlanFieldChange
	ar, br := a.ProtoReflect(), b.ProtoReflect()
	fields := ar.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if planBookkeeping[fd.Name()] {
			continue
		}
		if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() && ar.Has(fd) && br.Has(fd) {
			am, bm := ar.Get(fd).Message(), br.Get(fd).Message()
			sub := am.Descriptor().Fields()
			for j := 0; j < sub.Len(); j++ {
				if c := diffField(string(fd.Name())+".", am, bm, sub.Get(j)); c != nil {
					out = append(out, c)
				}
			}
			continue
		}
		if c := diffField("", ar, br, fd); c != nil {
			out = append(out, c)
		}
	}
	return out
}

// diffField compares one field of a and b; nil when equal.
func diffField(prefix string, a, b protoreflect.Message, fd protoreflect.FieldDescriptor) *exchangev1.PlanFieldChange {
	if fieldEqual(a, b, fd) {
		return nil
	}
	c := &exchangev1.PlanFieldChange{Field: prefix + string(fd.Name()), Before: fieldJSON(a, fd), After: fieldJSON(b, fd)}
	if fd.IsList() {
		al, bl := a.Get(fd).List(), b.Get(fd).List()
		for i := 0; i < bl.Len(); i++ {
			if !listHas(al, bl.Get(i), fd) {
				c.Added = append(c.Added, elementJSON(a, fd, bl.Get(i)))
			}
		}
		for i := 0; i < al.Len(); i++ {
			if !listHas(bl, al.Get(i), fd) {
				c.Removed = append(c.Removed, elementJSON(a, fd, al.Get(i)))
			}
		}
	}
	return c
}

// fieldEqual compares one field of two messages of the same type.
func fieldEqual(a, b protoreflect.Message, fd protoreflect.FieldDescriptor) bool {
	x, y := a.Type().New(), b.Type().New()
	if a.Has(fd) {
		x.Set(fd, a.Get(fd))
	}
	if b.Has(fd) {
		y.Set(fd, b.Get(fd))
	}
	return proto.Equal(x.Interface(), y.Interface())
}

func listHas(l protoreflect.List, v protoreflect.Value, fd protoreflect.FieldDescriptor) bool {
	for i := 0; i < l.Len(); i++ {
		if valueEqual(l.Get(i), v, fd) {
			return true
		}
	}
	return false
}

func valueEqual(x, y protoreflect.Value, fd protoreflect.FieldDescriptor) bool {
	if fd.Kind() == protoreflect.MessageKind {
		return proto.Equal(x.Message().Interface(), y.Message().Interface())
	}
	return x.Equal(y)
}

// fieldJSON is the JSON form of one field of m (as protojson writes it),
// null when unset.
func fieldJSON(m protoreflect.Message, fd protoreflect.FieldDescriptor) *structpb.Value {
	if !m.Has(fd) {
		return structpb.NewNullValue()
	}
	only := m.Type().New()
	only.Set(fd, m.Get(fd))
	return jsonOf(only.Interface(), string(fd.Name()))
}

// elementJSON is the JSON form of one element of a list field.
func elementJSON(m protoreflect.Message, fd protoreflect.FieldDescriptor, v protoreflect.Value) *structpb.Value {
	only := m.Type().New()
	only.Mutable(fd).List().Append(v)
	list := jsonOf(only.Interface(), string(fd.Name())).GetListValue().GetValues()
	if len(list) != 1 {
		return structpb.NewNullValue()
	}
	return list[0]
}

// jsonOf marshals m and returns the value of its one field key.
func jsonOf(m proto.Message, key string) *structpb.Value {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return structpb.NewNullValue()
	}
	var obj map[string]any
	if err := json.Unmarshal(b, &obj); err != nil {
		return structpb.NewNullValue()
	}
	v, err := structpb.NewValue(obj[key])
	if err != nil {
		return structpb.NewNullValue()
	}
	return v
}

// changedFields lists the paths of the fields that differ.
func changedFields(a, b *exchangev1.Plan) []string {
	var out []string
	for _, c := range diffPlans(a, b) {
		out = append(out, c.GetField())
	}
	return out
}
