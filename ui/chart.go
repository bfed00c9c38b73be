package ui

import (
	"math"
	"strconv"
)

// Geometry of the bar chart, in SVG user units; the SVG scales to its
// container's width.
const (
	chartWidth  = 640
	chartHeight = 260
	chartTop    = 20
	chartBottom = 40
	chartLeft   = 48
)

// bar is one period's total. Hidden bars are periods whose total the
// exchange suppressed as a small cell: drawn as a marked gap, not as 0.
type bar struct {
	Label  string
	Value  float64
	Hidden bool
}

// barChart is a bar chart laid out for the template, which draws it as
// inline SVG: no script, no library.
type barChart struct {
	Title          string
	Width, Height  int
	Bars           []barShape
	Axis           []axisTick
	BaseY, AxisEnd int
}

// barShape is one bar's rectangle and labels.
type barShape struct {
	bar
	X, Y, W, H    int
	LabelX, TextY int
	Text          string
}

// axisTick is one horizontal grid line.
type axisTick struct {
	Y    int
	Text string
}

// newBarChart lays out bars from 0 to a round maximum.
func newBarChart(title string, bars []bar) *barChart {
	c := &barChart{Title: title, Width: chartWidth, Height: chartHeight, BaseY: chartHeight - chartBottom, AxisEnd: chartWidth - 8}
	top := 0.0
	for _, b := range bars {
		if !b.Hidden {
			top = math.Max(top, b.Value)
		}
	}
	top = niceCeiling(top)
	plotH := float64(chartHeight - chartTop - chartBottom)
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		c.Axis = append(c.Axis, axisTick{Y: c.BaseY - int(math.Round(plotH*float64(i)/4)), Text: strconv.FormatFloat(v, 'f', -1, 64)})
	}
	if len(bars) == 0 {
		return c
	}
	slot := float64(chartWidth-chartLeft-8) / float64(len(bars))
	for i, b := range bars {
		h := 0
		if !b.Hidden && top > 0 {
			h = int(math.Round(plotH * b.Value / top))
		}
		x := chartLeft + int(math.Round(slot*float64(i)+slot*0.15))
		s := barShape{bar: b, X: x, W: max(int(slot*0.7), 2), H: h, Y: c.BaseY - h}
		s.LabelX = x + s.W/2
		s.TextY = s.Y - 4
		s.Text = strconv.FormatFloat(b.Value, 'f', -1, 64)
		if b.Hidden {
			s.Text = "hidden"
			s.TextY = c.BaseY - 4
		}
		c.Bars = append(c.Bars, s)
	}
	return c
}

// niceCeiling rounds v up to 1, 2 or 5 times a power of ten (at least 1).
func niceCeiling(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
