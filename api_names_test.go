package exchange_test

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// keywords are the reserved words of the languages the exchange's clients
// are written in. Contextual words that are valid identifiers (Python's
// match and type, Java's record and var) are not listed.
var keywords = map[string][]string{
	"Python": strings.Fields(`False None True and as assert async await break class continue def del elif
		else except finally for from global if import in is lambda nonlocal not or pass raise return try
		while with yield`),
	"JavaScript": strings.Fields(`await break case catch class const continue debugger default delete do
		else enum export extends false finally for function if implements import in instanceof interface
		let new null package private protected public return static super switch this throw true try
		typeof var void while with yield`),
	"Go": strings.Fields(`break case chan const continue default defer else fallthrough for func go goto
		if import interface map package range return select struct switch type var`),
	"Java": strings.Fields(`abstract assert boolean break byte case catch char class const continue default
		do double else enum extends false final finally float for goto if implements import instanceof
		int interface long native new null package private protected public return short static
		strictfp super switch synchronized this throw throws transient true try void volatile while`),
}

// keywordFieldsAllowed are the fields named with a keyword that were in
// the API before this rule, each harmless where it is a keyword. Add to it
// only with such a reason; a new field should simply be named otherwise.
var keywordFieldsAllowed = map[protoreflect.FullName]string{
	// A Go keyword, but generated Go names it Type; Python, JavaScript
	// and Java read it as msg.type, msg.type and getType().
	"alltogether.exchange.v1.Measure.type": "Go",
	// A JavaScript reserved word, but one that is valid after a dot
	// (row.delete, and "delete" in JSON); Python reads row.delete, Go
	// Delete, Java getDelete().
	"alltogether.exchange.v1.RowWrite.delete": "JavaScript",
}

// TestAPIFieldNamesAreNotKeywords walks every message of the API and fails
// on a field (or oneof) whose name, or JSON name, is a reserved word of
// Python, JavaScript, Go or Java: a client in that language cannot write
// msg.name (Transition.from was a syntax error in Python, h.from).
func TestAPIFieldNamesAreNotKeywords(t *testing.T) {
	files := 0
	fields := 0
	var check func(protoreflect.MessageDescriptor)
	check = func(m protoreflect.MessageDescriptor) {
		names := map[protoreflect.FullName][]string{}
		for i := range m.Fields().Len() {
			f := m.Fields().Get(i)
			names[f.FullName()] = []string{string(f.Name()), f.JSONName()}
			fields++
		}
		for i := range m.Oneofs().Len() {
			o := m.Oneofs().Get(i)
			names[o.FullName()] = []string{string(o.Name())}
		}
		for full, forms := range names {
			for lang, words := range keywords {
				for _, form := range slices.Compact(forms) {
					if !slices.Contains(words, form) || keywordFieldsAllowed[full] == lang {
						continue
					}
					t.Errorf("%s is named %q, a %s keyword: a %s client cannot write msg.%s; choose another name (as from became from_state)",
						full, form, lang, lang, form)
				}
			}
		}
		for i := range m.Messages().Len() {
			check(m.Messages().Get(i))
		}
	}
	pkg := exchangev1.File_alltogether_exchange_v1_referral_proto.Package()
	protoregistry.GlobalFiles.RangeFilesByPackage(pkg, func(fd protoreflect.FileDescriptor) bool {
		files++
		for i := range fd.Messages().Len() {
			check(fd.Messages().Get(i))
		}
		return true
	})
	if files < 10 || fields < 100 {
		t.Fatalf("found %d files and %d fields in %s: the check would prove nothing", files, fields, pkg)
	}
	t.Logf("%d fields in %d files of %s checked", fields, files, pkg)
}
