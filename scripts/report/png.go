package report

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"math"
	"strings"

	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/font/liberation"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

// DPI of the PNG matrices: twice the 72 points per inch of the layout, so
// labels stay sharp when the image is zoomed.
const DPI = 144

// Sizes of the matrix drawing, in points.
const (
	margin     = vg.Length(14)
	cellH      = vg.Length(15)
	cellW      = vg.Length(15) // sub-cell width when labels are rotated
	cellGap    = vg.Length(1.5)
	groupGap   = vg.Length(6) // between compiler columns
	labelPad   = vg.Length(6)
	swatch     = vg.Length(10)
	maxFlatSub = 12 // up to this many sub-columns, column labels are horizontal
)

// Layout is the geometry of one matrix image: where every label, cell and
// legend entry goes, in points from the top-left corner. It is computed
// from the grid alone, so a test can find any cell's pixels with CellRect.
type Layout struct {
	Grid   *Grid
	Matrix Matrix
	Title  string
	Notes  []string // lines under the title

	Width, Height vg.Length

	styles      styles
	rotated     bool // column and driver labels drawn vertically
	showDrivers bool // a driver label row under the compiler labels
	titleH      vg.Length
	noteH       vg.Length
	headerTop   vg.Length
	compH       vg.Length // height of the compiler label row
	drvH        vg.Length // height of the driver label row
	kernelRight vg.Length // right edge of the kernel labels
	factsLeft   vg.Length // left edge of the facts labels beside them
	gridLeft    vg.Length
	gridTop     vg.Length
	gridRight   vg.Length
	colLeft     []vg.Length
	subW        []vg.Length // sub-cell width per column
	legend      []legendEntry
	legendTop   vg.Length
	footer      bool // compiler labels repeated under a tall grid
	gridBottom  vg.Length
}

// footerRows is the number of kernels above which the compiler labels are
// repeated under the grid, so the bottom rows can be read without
// following a column up.
const footerRows = 20

type legendEntry struct {
	state State
	mark  Mark      // set on the entries of the marks, after the states
	x, y  vg.Length // top-left of the swatch
}

func (e legendEntry) label() string {
	if e.mark != MarkNone {
		return e.mark.Label()
	}
	return e.state.Label()
}

type styles struct {
	title, note, label, small text.Style
}

func newStyles() styles {
	h := text.Plain{Fonts: font.NewCache(liberation.Collection())}
	sans := func(size vg.Length, bold bool, c color.Color) text.Style {
		f := font.Font{Typeface: "Liberation", Variant: "Sans", Size: size}
		if bold {
			f.Weight = 700
		}
		return text.Style{Color: c, Font: f, Handler: h}
	}
	return styles{
		title: sans(15, true, color.Black),
		note:  sans(9, false, color.Gray{0x44}),
		label: sans(9, false, color.Black),
		small: sans(8, false, color.Gray{0x33}),
	}
}

// NewLayout lays out matrix m of grid g for run.
func NewLayout(g *Grid, m Matrix, run results.Run) *Layout {
	l := &Layout{Grid: g, Matrix: m, styles: newStyles()}
	l.Title, l.Notes = titles(g, m, run)
	s := l.styles
	lineH := func(st text.Style) vg.Length { return st.FontExtents().Height }

	l.titleH = lineH(s.title)
	l.noteH = lineH(s.note)
	l.showDrivers = len(g.Drivers()) > 1
	l.rotated = g.SubColumns() > maxFlatSub

	var kernelW, factsW vg.Length
	for _, k := range g.Kernels {
		kernelW = max(kernelW, s.label.Width(k))
		factsW = max(factsW, s.small.Width(g.FactsLabel(k)))
	}
	var compW, drvW vg.Length
	for _, c := range g.Columns {
		compW = max(compW, s.label.Width(c.Compiler))
		for _, d := range c.Drivers {
			drvW = max(drvW, s.small.Width(d))
		}
	}

	l.kernelRight = margin + kernelW
	l.gridLeft = l.kernelRight + labelPad
	if factsW > 0 {
		l.factsLeft = l.gridLeft
		l.gridLeft += factsW + labelPad
	}
	x := l.gridLeft
	for _, c := range g.Columns {
		w := cellW
		if !l.rotated {
			// Wide enough for the driver label, and the sub-cells
			// together wide enough for the compiler label.
			w = max(2*cellW, drvW+labelPad)
			w = max(w, (s.label.Width(c.Compiler)+labelPad)/vg.Length(len(c.Drivers)))
		}
		l.colLeft = append(l.colLeft, x)
		l.subW = append(l.subW, w)
		x += w*vg.Length(len(c.Drivers)) + groupGap
	}
	l.gridRight = x - groupGap

	if l.rotated {
		l.compH = compW + labelPad
		if l.showDrivers {
			l.drvH = drvW + labelPad
		}
	} else {
		l.compH = lineH(s.label) + labelPad/2
		if l.showDrivers {
			l.drvH = lineH(s.small) + labelPad/2
		}
	}

	l.headerTop = margin + l.titleH + vg.Length(len(l.Notes))*l.noteH + 2*labelPad
	l.gridTop = l.headerTop + l.compH + l.drvH
	l.gridBottom = l.gridTop + vg.Length(len(g.Kernels))*cellH
	legendTop := l.gridBottom
	if l.footer = len(g.Kernels) > footerRows; l.footer {
		legendTop += l.compH
	}

	l.Width = l.gridRight + margin
	l.Width = max(l.Width, 2*margin+s.title.Width(l.Title))
	for _, n := range l.Notes {
		l.Width = max(l.Width, 2*margin+s.note.Width(n))
	}

	// The legend wraps within the image width.
	l.legendTop = legendTop + 2*labelPad
	lx, ly := margin, l.legendTop
	var entries []legendEntry
	for _, st := range l.legendStates() {
		entries = append(entries, legendEntry{state: st})
	}
	for _, mk := range g.Marks() {
		entries = append(entries, legendEntry{state: StateNotRun, mark: mk})
	}
	for _, e := range entries {
		w := swatch + labelPad/2 + s.label.Width(e.label())
		if lx > margin && lx+w > l.Width-margin {
			lx, ly = margin, ly+lineH(s.label)+labelPad/2
		}
		e.x, e.y = lx, ly
		l.legend = append(l.legend, e)
		lx += w + 2*labelPad
	}
	l.Height = ly + lineH(s.label) + margin

	// Whole pixels, so that points map to the same pixels everywhere.
	px := func(v vg.Length) vg.Length { return vg.Length(math.Ceil(float64(v)*DPI/72)) * 72 / DPI }
	l.Width, l.Height = px(l.Width), px(l.Height)
	return l
}

// legendStates lists the states of the legend: those the matrix can show,
// plus "not in grid" when some kernel lacks a cell another one has.
func (l *Layout) legendStates() []State {
	out := States(l.Matrix)
	if l.Grid.HasHoles() {
		out = append(out, StateNone)
	}
	return out
}

// titles returns an image's title and the notes under it: the run and a
// count of the cells per state.
func titles(g *Grid, m Matrix, run results.Run) (string, []string) {
	title := "Driver compatibility: compiled"
	if m == Success {
		title = "Driver compatibility: compiled, loaded and captured events in a VM"
	}
	var notes []string
	if n := runLine(run); n != "" {
		notes = append(notes, n)
	}
	counts := map[State]int{}
	total := 0
	for _, k := range g.Kernels {
		for _, c := range g.Columns {
			for _, d := range c.Drivers {
				if cell := g.Cell(k, c.Compiler, d); cell != nil {
					counts[StateOf(m, cell)]++
					total++
				}
			}
		}
	}
	parts := []string{fmt.Sprintf("%d %s x %d %s, %d %s:",
		len(g.Kernels), plural(len(g.Kernels), "kernel", "kernels"),
		len(g.Columns), plural(len(g.Columns), "compiler", "compilers"),
		total, plural(total, "cell", "cells"))}
	for _, st := range States(m) {
		if counts[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[st], st.Label()))
		}
	}
	line := parts[0] + " " + strings.Join(parts[1:], ", ")
	if m == Success && !g.HasTests() {
		line += " (no test results yet)"
	}
	notes = append(notes, line)
	return title, notes
}

// runLine describes the run that produced the results, in one line.
func runLine(run results.Run) string {
	var parts []string
	if !run.Time.IsZero() {
		parts = append(parts, "run "+run.Time.UTC().Format("2006-01-02 15:04 UTC"))
	}
	switch {
	case run.Tree != "" && run.SourceHash != "":
		parts = append(parts, run.Tree+" (source "+shortHash(run.SourceHash)+")")
	case run.Tree != "":
		parts = append(parts, run.Tree)
	case run.SourceHash != "":
		parts = append(parts, "libs source "+shortHash(run.SourceHash))
	}
	if run.Shard != nil {
		parts = append(parts, "shard "+run.Shard.String())
	}
	if run.Provider != "" {
		p := "provider " + run.Provider
		if run.Accel != "" {
			p += " (" + run.Accel + ")"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

func shortHash(h string) string {
	h = strings.TrimPrefix(h, "sha256:")
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// CellRect returns the pixels of the sub-cell of driver sub in column col,
// row row.
func (l *Layout) CellRect(row, col, sub int) image.Rectangle {
	x0, y0, x1, y1 := l.cellBox(row, col, sub)
	s := vg.Length(DPI) / 72
	return image.Rect(int(math.Ceil(float64(x0*s))), int(math.Ceil(float64(y0*s))),
		int(math.Floor(float64(x1*s))), int(math.Floor(float64(y1*s))))
}

// CellCenter returns the pixel at the centre of a sub-cell.
func (l *Layout) CellCenter(row, col, sub int) image.Point {
	r := l.CellRect(row, col, sub)
	return image.Pt((r.Min.X+r.Max.X)/2, (r.Min.Y+r.Max.Y)/2)
}

// Size is the image size in pixels.
func (l *Layout) Size() image.Point {
	s := float64(DPI) / 72
	return image.Pt(int(float64(l.Width)*s+0.5), int(float64(l.Height)*s+0.5))
}

// cellBox is the filled box of a sub-cell, in points from the top-left.
func (l *Layout) cellBox(row, col, sub int) (x0, y0, x1, y1 vg.Length) {
	w := l.subW[col]
	x0 = l.colLeft[col] + vg.Length(sub)*w + cellGap/2
	y0 = l.gridTop + vg.Length(row)*cellH + cellGap/2
	return x0, y0, x0 + w - cellGap, y0 + cellH - cellGap
}

// PNG draws the matrix and encodes it as PNG.
func (l *Layout) PNG() ([]byte, error) {
	img := vgimg.NewWith(vgimg.UseWH(l.Width, l.Height), vgimg.UseDPI(DPI))
	c := draw.New(img)
	l.draw(&c)
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("encode PNG: %w", err)
	}
	return buf.Bytes(), nil
}

// at converts a top-down position to the canvas' bottom-up coordinates.
func (l *Layout) at(x, y vg.Length) vg.Point { return vg.Point{X: x, Y: l.Height - y} }

func (l *Layout) fillBox(c *draw.Canvas, x0, y0, x1, y1 vg.Length, col color.Color) {
	c.SetColor(col)
	var p vg.Path
	p.Move(l.at(x0, y0))
	p.Line(l.at(x1, y0))
	p.Line(l.at(x1, y1))
	p.Line(l.at(x0, y1))
	p.Close()
	c.Fill(p)
}

func (l *Layout) draw(c *draw.Canvas) {
	s := l.styles
	g := l.Grid

	// Title and notes.
	y := margin
	st := s.title
	st.YAlign = text.YTop
	c.FillText(st, l.at(margin, y), l.Title)
	y += l.titleH
	for _, n := range l.Notes {
		st := s.note
		st.YAlign = text.YTop
		c.FillText(st, l.at(margin, y), n)
		y += l.noteH
	}

	// Zebra stripes behind every other kernel row, for reading across.
	for r := range g.Kernels {
		if r%2 == 1 {
			y0 := l.gridTop + vg.Length(r)*cellH
			l.fillBox(c, margin/2, y0, l.gridRight+cellGap, y0+cellH, color.Gray{0xf0})
		}
	}

	// Kernel labels, right-aligned against the grid, or against the
	// kernels' facts, which follow them in smaller grey type.
	for r, k := range g.Kernels {
		y := l.gridTop + (vg.Length(r)+0.5)*cellH
		st := s.label
		st.XAlign, st.YAlign = text.XRight, text.YCenter
		c.FillText(st, l.at(l.kernelRight, y), k)
		if f := g.FactsLabel(k); f != "" {
			st := s.small
			st.Color = color.Gray{0x55}
			st.YAlign = text.YCenter
			c.FillText(st, l.at(l.factsLeft, y), f)
		}
	}

	// Compiler and driver labels.
	for i, col := range g.Columns {
		w := l.subW[i] * vg.Length(len(col.Drivers))
		mid := l.colLeft[i] + w/2
		bottom := l.headerTop + l.compH - labelPad/2
		st := s.label
		if l.rotated {
			st.Rotation = math.Pi / 2
			st.XAlign, st.YAlign = text.XLeft, text.YCenter
		} else {
			st.XAlign, st.YAlign = text.XCenter, text.YBottom
		}
		c.FillText(st, l.at(mid, bottom), col.Compiler)
		if l.footer {
			// Under the grid the label hangs from its top end.
			if l.rotated {
				st.XAlign = text.XRight
			} else {
				st.YAlign = text.YTop
			}
			c.FillText(st, l.at(mid, l.gridBottom+labelPad/2), col.Compiler)
		}
		if !l.showDrivers {
			continue
		}
		// A bracket over a compiler's sub-cells ties its drivers together.
		if len(col.Drivers) > 1 {
			yb := l.headerTop + l.compH - labelPad/4
			c.StrokeLine2(draw.LineStyle{Color: color.Gray{0x88}, Width: 0.75},
				l.at(l.colLeft[i]+cellGap, yb).X, l.at(0, yb).Y, l.at(l.colLeft[i]+w-cellGap, yb).X, l.at(0, yb).Y)
		}
		for j, d := range col.Drivers {
			x := l.colLeft[i] + (vg.Length(j)+0.5)*l.subW[i]
			st := s.small
			if l.rotated {
				st.Rotation = math.Pi / 2
				st.XAlign, st.YAlign = text.XLeft, text.YCenter
			} else {
				st.XAlign, st.YAlign = text.XCenter, text.YBottom
			}
			c.FillText(st, l.at(x, l.gridTop-labelPad/2), d)
		}
	}

	// Cells.
	for r, k := range g.Kernels {
		for i, col := range g.Columns {
			for j, d := range col.Drivers {
				cell := g.Cell(k, col.Compiler, d)
				state := StateOf(l.Matrix, cell)
				x0, y0, x1, y1 := l.cellBox(r, i, j)
				if state == StateNone {
					l.strokeBox(c, x0, y0, x1, y1)
					continue
				}
				l.fillBox(c, x0, y0, x1, y1, state.Color())
				l.markBox(c, x0, y0, x1, y1, g.MarkOf(cell))
			}
		}
	}

	// Legend.
	for _, e := range l.legend {
		lh := s.label.FontExtents().Height
		sy := e.y + (lh-swatch)/2
		switch {
		case e.mark != MarkNone:
			l.fillBox(c, e.x, sy, e.x+swatch, sy+swatch, color.White)
			l.markBox(c, e.x, sy, e.x+swatch, sy+swatch, e.mark)
		case e.state == StateNone:
			l.strokeBox(c, e.x, sy, e.x+swatch, sy+swatch)
		default:
			l.fillBox(c, e.x, sy, e.x+swatch, sy+swatch, e.state.Color())
		}
		st := s.label
		st.YAlign = text.YCenter
		c.FillText(st, l.at(e.x+swatch+labelPad/2, e.y+lh/2), e.label())
	}
}

// markBox draws a cell's mark over its fill: a black outline for the
// kernel's own compiler, a dashed one for a stand-in. The outline sits
// inside the box, so neighbouring cells keep their colour.
func (l *Layout) markBox(c *draw.Canvas, x0, y0, x1, y1 vg.Length, m Mark) {
	if m == MarkNone {
		return
	}
	const w = vg.Length(1.6)
	ls := draw.LineStyle{Color: color.Black, Width: w}
	if m == MarkStandIn {
		ls.Dashes = []vg.Length{2, 1.5}
	}
	x0, y0, x1, y1 = x0+w/2, y0+w/2, x1-w/2, y1-w/2
	c.StrokeLines(ls, []vg.Point{l.at(x0, y0), l.at(x1, y0), l.at(x1, y1), l.at(x0, y1), l.at(x0, y0)})
}

// strokeBox outlines an empty cell: a combination the results do not have.
func (l *Layout) strokeBox(c *draw.Canvas, x0, y0, x1, y1 vg.Length) {
	l.fillBox(c, x0, y0, x1, y1, color.White)
	c.StrokeLines(draw.LineStyle{Color: color.Gray{0xb0}, Width: 0.5},
		[]vg.Point{l.at(x0, y0), l.at(x1, y0), l.at(x1, y1), l.at(x0, y1), l.at(x0, y0)})
}
