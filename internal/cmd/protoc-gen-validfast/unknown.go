package main

import (
	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
)

var protoreflectPackage = protogen.GoImportPath("google.golang.org/protobuf/reflect/protoreflect")

// unknownFuncs writes Unknown, which reports whether a message or any
// message it holds carries fields unknown to this build, and its check of
// each message type: plain field reads where the server's reflective walk
// (server/unknown_fields.go) looks every field up. The walk still names
// the field when Unknown finds something.
func (gen *generator) unknownFuncs(messages []*protogen.Message) {
	g := gen.g
	g.P("// Unknown reports whether m, or any message it holds, carries fields")
	g.P("// this build's schema does not know (kept by decoding as unknown bytes).")
	g.P("func Unknown(m ", protoPackage.Ident("Message"), ") bool {")
	gen.dispatch(messages, "unknown")
	g.P("case nil:")
	g.P("return false")
	g.P("}")
	g.P("return unknownReflect(m.ProtoReflect())")
	g.P("}")
	g.P()
	for _, m := range messages {
		g.P("// unknown", m.GoIdent.GoName, " is Unknown for ", m.Desc.FullName(), ".")
		g.P("func unknown", m.GoIdent.GoName, "(x *", m.GoIdent, ") bool {")
		g.P("if x == nil { return false }")
		g.P("if len(x.ProtoReflect().GetUnknown()) > 0 { return true }")
		for _, f := range m.Fields {
			msg := heldMessage(f)
			if msg == nil {
				continue
			}
			check := func(v string) string {
				if _, ours := gen.ours[msg.Desc.FullName()]; ours {
					return "unknown" + msg.GoIdent.GoName + "(" + v + ")"
				}
				if !holdsMessages(msg) {
					// Timestamp, Duration: only their own bytes.
					return v + " != nil && len(" + v + ".ProtoReflect().GetUnknown()) > 0"
				}
				return v + " != nil && unknownReflect(" + v + ".ProtoReflect())"
			}
			switch {
			case f.Oneof != nil && !f.Oneof.Desc.IsSynthetic():
				g.P("if v, ok := x.", f.Oneof.GoName, ".(*", f.GoIdent, "); ok && ", check("v."+f.GoName), " { return true }")
			case f.Desc.IsList() || f.Desc.IsMap():
				g.P("for _, v := range x.", f.GoName, " { if ", check("v"), " { return true } }")
			default:
				g.P("if ", check("x."+f.GoName), " { return true }")
			}
		}
		g.P("return false")
		g.P("}")
		g.P()
	}
	g.P("// unknownReflect is Unknown for messages of other files, by reflection.")
	g.P("func unknownReflect(m ", protoreflectPackage.Ident("Message"), ") bool {")
	g.P("if !m.IsValid() { return false }")
	g.P("if len(m.GetUnknown()) > 0 { return true }")
	g.P("found := false")
	g.P("m.Range(func(fd ", protoreflectPackage.Ident("FieldDescriptor"), ", v ", protoreflectPackage.Ident("Value"), ") bool {")
	g.P("switch {")
	g.P("case fd.IsList() && fd.Message() != nil:")
	g.P("for i := range v.List().Len() { found = found || unknownReflect(v.List().Get(i).Message()) }")
	g.P("case fd.IsMap() && fd.MapValue().Message() != nil:")
	g.P("v.Map().Range(func(_ ", protoreflectPackage.Ident("MapKey"), ", e ", protoreflectPackage.Ident("Value"), ") bool { found = found || unknownReflect(e.Message()); return !found })")
	g.P("case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:")
	g.P("found = unknownReflect(v.Message())")
	g.P("}")
	g.P("return !found")
	g.P("})")
	g.P("return found")
	g.P("}")
	g.P()
}

// boundedFunc writes Bounded, which names the message types whose every
// list and map (outside fields the rules ignore always) declares its
// bound: for them, Valid true means every list and map is within its
// bound, and nothing needs counting again.
func (gen *generator) boundedFunc(messages []*protogen.Message) {
	g := gen.g
	g.P("// Bounded reports whether every list and map a message of m's type may")
	g.P("// hold, outside fields its rules ignore always, declares a bound in its")
	g.P("// rules: if so, Valid(m) true means that none is over its bound.")
	g.P("func Bounded(m ", protoPackage.Ident("Message"), ") bool {")
	var bounded []*protogen.Message
	for _, m := range messages {
		if gen.bounded(m, map[*protogen.Message]bool{}) {
			bounded = append(bounded, m)
		}
	}
	gen.typeSet(bounded)
	g.P()
}

// bounded reports whether m's lists and maps, and those of every message
// it may hold, declare bounds.
func (gen *generator) bounded(m *protogen.Message, seen map[*protogen.Message]bool) bool {
	if seen[m] {
		return true
	}
	seen[m] = true
	for _, f := range m.Fields {
		rules, _ := proto.GetExtension(f.Desc.Options(), validate.E_Field).(*validate.FieldRules)
		if rules.GetIgnore() == validate.Ignore_IGNORE_ALWAYS {
			continue
		}
		switch {
		case f.Desc.IsMap() && !rules.GetMap().HasMaxPairs():
			return false
		case f.Desc.IsList() && !rules.GetRepeated().HasMaxItems():
			return false
		}
		sub := heldMessage(f)
		if sub == nil {
			continue
		}
		ours, ok := gen.ours[sub.Desc.FullName()]
		if !ok {
			// Another file's message: bounded only if it holds no list
			// or map at all (Timestamp, Duration).
			fields := sub.Desc.Fields()
			for i := range fields.Len() {
				if fields.Get(i).IsList() || fields.Get(i).IsMap() {
					return false
				}
				if fields.Get(i).Message() != nil {
					return false
				}
			}
			continue
		}
		if !gen.bounded(ours, seen) {
			return false
		}
	}
	return true
}

// holdsMessages reports whether any field of m holds messages.
func holdsMessages(m *protogen.Message) bool {
	fields := m.Desc.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Message() != nil || fd.IsMap() && fd.MapValue().Message() != nil {
			return true
		}
	}
	return false
}
