package main

import (
	"fmt"
	"regexp/syntax"
	"strconv"
	"strings"
)

// patternStep is one element of a simple pattern: a literal, or a
// character class repeated between min and max times.
type patternStep struct {
	literal  string
	ranges   []rune // inclusive pairs, all ASCII
	min, max int
}

// simplePattern splits an anchored pattern made of ASCII literals and
// ASCII classes, of which at most one repeats a variable number of times,
// into its steps. Such a pattern matches a string only at one split, found
// from the string's length, so it needs no backtracking and no regexp.
// Anything else is left to regexp.
func simplePattern(pattern string) ([]patternStep, bool) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil || re.Op != syntax.OpConcat || len(re.Sub) < 3 ||
		re.Sub[0].Op != syntax.OpBeginText || re.Sub[len(re.Sub)-1].Op != syntax.OpEndText {
		return nil, false
	}
	var steps []patternStep
	variable := 0
	for _, sub := range re.Sub[1 : len(re.Sub)-1] {
		step, ok := simpleStep(sub)
		if !ok {
			return nil, false
		}
		if step.min != step.max {
			variable++
		}
		steps = append(steps, step)
	}
	return steps, variable <= 1
}

func simpleStep(re *syntax.Regexp) (patternStep, bool) {
	ascii := func(rs []rune) bool {
		for _, r := range rs {
			if r > 0x7f {
				return false
			}
		}
		return true
	}
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 || !ascii(re.Rune) {
			return patternStep{}, false
		}
		return patternStep{literal: string(re.Rune), min: 1, max: 1}, true
	case syntax.OpCharClass:
		if !ascii(re.Rune) {
			return patternStep{}, false
		}
		return patternStep{ranges: re.Rune, min: 1, max: 1}, true
	case syntax.OpRepeat, syntax.OpQuest, syntax.OpStar, syntax.OpPlus:
		inner, ok := simpleStep(re.Sub[0])
		if !ok || inner.literal != "" && len(inner.literal) != 1 {
			return patternStep{}, false
		}
		if inner.literal != "" {
			c := rune(inner.literal[0])
			inner = patternStep{ranges: []rune{c, c}}
		}
		inner.min, inner.max = re.Min, re.Max
		switch re.Op {
		case syntax.OpQuest:
			inner.min, inner.max = 0, 1
		case syntax.OpStar:
			inner.min, inner.max = 0, -1
		case syntax.OpPlus:
			inner.min, inner.max = 1, -1
		}
		return inner, true
	}
	return patternStep{}, false
}

// matcher writes matchName, which answers as regexp would for pattern.
func (gen *generator) matcher(name, pattern string, steps []patternStep) {
	g := gen.g
	fixed, variable := 0, -1
	for i, s := range steps {
		switch {
		case s.literal != "":
			fixed += len(s.literal)
		case s.min == s.max:
			fixed += s.min
		default:
			variable = i
		}
	}
	fn := matcherName(name)
	g.P("// ", fn, " reports whether s matches ", strconv.Quote(pattern), " as")
	g.P("// regexp would, without backtracking: at most one part of the pattern")
	g.P("// repeats a variable number of times, and it takes what the string's")
	g.P("// length leaves.")
	g.P("func ", fn, "(s string) bool {")
	if variable < 0 {
		g.P("if len(s) != ", fixed, " { return false }")
	} else {
		v := steps[variable]
		g.P("k := len(s) - ", fixed)
		if v.max < 0 {
			g.P("if k < ", v.min, " { return false }")
		} else {
			g.P("if k < ", v.min, " || k > ", v.max, " { return false }")
		}
	}
	g.P("i := 0")
	for i, s := range steps {
		if s.literal != "" {
			g.P("if s[i:i+", len(s.literal), "] != ", strconv.Quote(s.literal), " { return false }")
			g.P("i += ", len(s.literal))
			continue
		}
		class := fmt.Sprintf("%sClass%d", name, i+1)
		count := strconv.Itoa(s.min)
		if i == variable {
			count = "k"
		}
		if count == "1" {
			g.P("if !", class, "[s[i]] { return false }")
			g.P("i++")
		} else {
			g.P("for end := i + ", count, "; i < end; i++ { if !", class, "[s[i]] { return false } }")
		}
	}
	g.P("return i == len(s)")
	g.P("}")
	g.P()
	for i, s := range steps {
		if s.literal != "" {
			continue
		}
		parts := make([]string, len(s.ranges))
		for j, r := range s.ranges {
			parts[j] = strconv.QuoteRune(r)
		}
		g.P("var ", fmt.Sprintf("%sClass%d", name, i+1), " = byteSet(", strings.Join(parts, ", "), ")")
	}
	g.P()
}
