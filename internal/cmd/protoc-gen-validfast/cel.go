package main

import (
	"strconv"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// celType is the CEL type of a translated expression, as far as the
// translation needs it.
type celType int

const (
	celBool celType = iota
	celInt
	celUint
	celString
	celMessage
	celList
)

// celValue is a translated expression: its Go text, its CEL type, and for
// a message the message.
type celValue struct {
	text    string
	typ     celType
	message *protogen.Message
}

// celTranslator turns the message CEL rules of one message into Go.
type celTranslator struct {
	gen  *generator
	this *protogen.Message
}

// translateCEL turns expr, a message rule of m, into a Go boolean
// expression over x, or refuses it.
func (gen *generator) translateCEL(m *protogen.Message, expr string) string {
	env, err := cel.NewEnv()
	if err != nil {
		refuse("CEL environment: %v", err)
	}
	parsed, issues := env.Parse(expr)
	if issues.Err() != nil {
		refuse("CEL %q: %v", expr, issues.Err())
	}
	t := celTranslator{gen: gen, this: m}
	v := t.expr(parsed.NativeRep().Expr())
	if v.typ != celBool {
		refuse("CEL %q is not a boolean", expr)
	}
	return v.text
}

func (t celTranslator) expr(e ast.Expr) celValue {
	switch e.Kind() {
	case ast.IdentKind:
		if e.AsIdent() != "this" {
			refuse("CEL identifier %s", e.AsIdent())
		}
		return celValue{text: "x", typ: celMessage, message: t.this}
	case ast.LiteralKind:
		switch v := e.AsLiteral().(type) {
		case types.String:
			return celValue{text: strconv.Quote(string(v)), typ: celString}
		case types.Int:
			return celValue{text: "int64(" + strconv.FormatInt(int64(v), 10) + ")", typ: celInt}
		case types.Uint:
			return celValue{text: "uint64(" + strconv.FormatUint(uint64(v), 10) + ")", typ: celUint}
		case types.Bool:
			return celValue{text: strconv.FormatBool(bool(v)), typ: celBool}
		}
		refuse("CEL literal %v", e.AsLiteral())
	case ast.SelectKind:
		return t.selection(e.AsSelect())
	case ast.CallKind:
		return t.call(e.AsCall())
	}
	refuse("CEL expression of kind %v", e.Kind())
	return celValue{}
}

// selection translates this.field, a.b.field and has(...).
func (t celTranslator) selection(s ast.SelectExpr) celValue {
	operand := t.expr(s.Operand())
	if operand.typ != celMessage {
		refuse("CEL selection on a non-message")
	}
	var f *protogen.Field
	for _, candidate := range operand.message.Fields {
		if string(candidate.Desc.Name()) == s.FieldName() {
			f = candidate
		}
	}
	if f == nil {
		refuse("CEL field %s", s.FieldName())
	}
	fd := f.Desc
	if f.Oneof != nil && !f.Oneof.Desc.IsSynthetic() {
		refuse("CEL on a oneof member")
	}
	getter := operand.text + ".Get" + f.GoName + "()"
	if s.IsTestOnly() {
		switch {
		case fd.IsList() || fd.IsMap():
			return celValue{text: "len(" + getter + ") > 0", typ: celBool}
		case fd.Kind() == protoreflect.MessageKind:
			return celValue{text: getter + " != nil", typ: celBool}
		case fd.HasPresence():
			if operand.text != "x" {
				refuse("CEL has() on a nested optional scalar")
			}
			return celValue{text: "x." + f.GoName + " != nil", typ: celBool}
		default:
			return celValue{text: nonZero(fd, getter), typ: celBool}
		}
	}
	switch {
	case fd.IsMap():
		refuse("CEL map field")
	case fd.IsList():
		return celValue{text: getter, typ: celList}
	}
	switch fd.Kind() {
	case protoreflect.MessageKind:
		ours, ok := t.gen.ours[f.Message.Desc.FullName()]
		if !ok {
			refuse("CEL field of message %s", f.Message.Desc.FullName())
		}
		return celValue{text: getter, typ: celMessage, message: ours}
	case protoreflect.StringKind:
		return celValue{text: getter, typ: celString}
	case protoreflect.BoolKind:
		return celValue{text: getter, typ: celBool}
	case protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind,
		protoreflect.Sint64Kind, protoreflect.Sfixed32Kind, protoreflect.Sfixed64Kind:
		return celValue{text: "int64(" + getter + ")", typ: celInt}
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
		return celValue{text: "uint64(" + getter + ")", typ: celUint}
	}
	refuse("CEL field of kind %v", fd.Kind())
	return celValue{}
}

// call translates the operators and functions the rules use. None of them
// can fail at run time (no arithmetic), so CEL's error semantics in && and
// || do not arise.
func (t celTranslator) call(c ast.CallExpr) celValue {
	args := c.Args()
	switch c.FunctionName() {
	case "_||_", "_&&_":
		a, b := t.expr(args[0]), t.expr(args[1])
		if a.typ != celBool || b.typ != celBool {
			refuse("CEL %s on non-booleans", c.FunctionName())
		}
		op := " || "
		if c.FunctionName() == "_&&_" {
			op = " && "
		}
		return celValue{text: "(" + a.text + op + b.text + ")", typ: celBool}
	case "!_":
		a := t.expr(args[0])
		if a.typ != celBool {
			refuse("CEL ! on a non-boolean")
		}
		return celValue{text: "!(" + a.text + ")", typ: celBool}
	case "_==_", "_!=_", "_<_", "_<=_", "_>_", "_>=_":
		a, b := t.expr(args[0]), t.expr(args[1])
		if a.typ != b.typ {
			refuse("CEL comparison of different types")
		}
		ordered := c.FunctionName() != "_==_" && c.FunctionName() != "_!=_"
		switch {
		case a.typ == celInt || a.typ == celUint:
		case !ordered && (a.typ == celString || a.typ == celBool):
		default:
			refuse("CEL comparison of this type")
		}
		op := map[string]string{"_==_": " == ", "_!=_": " != ", "_<_": " < ", "_<=_": " <= ", "_>_": " > ", "_>=_": " >= "}[c.FunctionName()]
		return celValue{text: "(" + a.text + op + b.text + ")", typ: celBool}
	case "_+_":
		a, b := t.expr(args[0]), t.expr(args[1])
		if a.typ != celString || b.typ != celString {
			refuse("CEL + on non-strings (arithmetic can overflow)")
		}
		return celValue{text: "(" + a.text + " + " + b.text + ")", typ: celString}
	case "size":
		var a celValue
		switch {
		case c.IsMemberFunction() && len(args) == 0:
			a = t.expr(c.Target())
		case !c.IsMemberFunction() && len(args) == 1:
			a = t.expr(args[0])
		default:
			refuse("CEL size with %d arguments", len(args))
		}
		switch a.typ {
		case celList:
			return celValue{text: "int64(len(" + a.text + "))", typ: celInt}
		case celString:
			return celValue{text: "int64(" + t.gen.g.QualifiedGoIdent(utf8Package.Ident("RuneCountInString")) + "(" + a.text + "))", typ: celInt}
		}
		refuse("CEL size of this type")
	case "startsWith", "endsWith", "contains":
		if !c.IsMemberFunction() || len(args) != 1 {
			refuse("CEL %s form", c.FunctionName())
		}
		a, b := t.expr(c.Target()), t.expr(args[0])
		if a.typ != celString || b.typ != celString {
			refuse("CEL %s on non-strings", c.FunctionName())
		}
		fn := map[string]string{"startsWith": "HasPrefix", "endsWith": "HasSuffix", "contains": "Contains"}[c.FunctionName()]
		return celValue{text: t.gen.g.QualifiedGoIdent(stringsPkg.Ident(fn)) + "(" + a.text + ", " + b.text + ")", typ: celBool}
	}
	refuse("CEL function %s", c.FunctionName())
	return celValue{}
}
