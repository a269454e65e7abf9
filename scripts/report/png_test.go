package report

import (
	"bytes"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	gvg "gonum.org/v1/plot/vg"
)

var pngOut = flag.String("png-out", "", "also write the test matrices as PNG files into this directory, to look at them")

// synthetic returns a results file of nk kernels x nc compilers (gcc with
// kmod, clang with bpf and modern_bpf) whose statuses cycle through every
// state.
func synthetic(nk, nc int) *results.File {
	f := &results.File{Run: results.Run{
		Time: time.Date(2026, 11, 26, 18, 30, 0, 0, time.UTC), SourceHash: "3f9a0c1d2e4b5a6978877665544332211",
		Provider: "qemu", Accel: "tcg",
	}}
	var kernels []string
	for i := range nk {
		switch i % 4 {
		case 0:
			kernels = append(kernels, fmt.Sprintf("5.%d.0-%d-cloud-amd64", 4+i, 10+i))
		case 1:
			kernels = append(kernels, fmt.Sprintf("6.%d.0-%d-cloud-amd64", i, 50+i))
		case 2:
			kernels = append(kernels, fmt.Sprintf("6.%d.%d+deb13-cloud-amd64", i, 100+i))
		default:
			kernels = append(kernels, fmt.Sprintf("4.%d.%d-0%d-generic", i, i, 41600+i))
		}
	}
	var compilers []string
	for i := range nc {
		if i < nc/2 {
			compilers = append(compilers, fmt.Sprintf("gcc-%d", 5+i))
		} else {
			compilers = append(compilers, fmt.Sprintf("clang-%d", 7+i-nc/2))
		}
	}
	n := 0
	for _, k := range kernels {
		for _, comp := range compilers {
			drivers := []string{layout.Kmod}
			if kind, _ := results.SplitCompiler(comp); kind == "clang" {
				drivers = []string{layout.BPF, layout.ModernBPF}
			}
			for _, d := range drivers {
				n++
				c := results.Cell{Kernel: k, Compiler: comp, Driver: d}
				switch n % 11 {
				case 0:
					c.Compile = &results.Compile{Status: results.CompileFail, Reason: "error: unknown option"}
				case 1:
					c.Compile = &results.Compile{Status: results.CompileSkip, Reason: "builder glibc too old"}
				case 2:
					c.Compile = &results.Compile{Status: results.CompileOK}
					c.Test = &results.Test{Status: results.TestFail, Kind: results.KindLoad}
				case 3:
					c.Compile = &results.Compile{Status: results.CompileOK}
					c.Test = &results.Test{Status: results.TestError, Reason: "VM did not boot"}
				case 4:
					c.Compile = &results.Compile{Status: results.CompileOK}
					c.Test = &results.Test{Status: results.TestSkip, Reason: "no BTF"}
				case 5:
					c.Compile = &results.Compile{Status: results.CompileOK}
				case 6:
					if k == kernels[len(kernels)-1] {
						continue // a hole: this cell is not in the grid
					}
					fallthrough
				default:
					c.Compile = &results.Compile{Status: results.CompileOK}
					c.Test = &results.Test{Status: results.TestPass, Events: 500}
				}
				f.Cells = append(f.Cells, c)
			}
		}
	}
	return f
}

func TestPNGCells(t *testing.T) {
	for _, size := range []struct{ kernels, compilers int }{{3, 3}, {40, 25}, {1, 1}} {
		t.Run(fmt.Sprintf("%dx%d", size.kernels, size.compilers), func(t *testing.T) {
			f := synthetic(size.kernels, size.compilers)
			// Known cells at the corners and in the middle.
			g0 := NewGrid(f)
			first, last := g0.Kernels[0], g0.Kernels[len(g0.Kernels)-1]
			mid := g0.Kernels[len(g0.Kernels)/2]
			lastCol := g0.Columns[len(g0.Columns)-1]
			known := []struct {
				kernel, compiler, driver string
				compile, test            string
			}{
				{first, g0.Columns[0].Compiler, g0.Columns[0].Drivers[0], results.CompileOK, results.TestPass},
				{mid, g0.Columns[len(g0.Columns)/2].Compiler, g0.Columns[len(g0.Columns)/2].Drivers[0], results.CompileOK, results.TestFail},
				{last, lastCol.Compiler, lastCol.Drivers[len(lastCol.Drivers)-1], results.CompileOK, results.TestSkip},
			}
			for _, k := range known {
				f.Upsert(results.Cell{Kernel: k.kernel, Compiler: k.compiler, Driver: k.driver,
					Compile: &results.Compile{Status: k.compile}, Test: &results.Test{Status: k.test}})
			}
			g := NewGrid(f)
			for _, m := range []Matrix{Compiled, Success} {
				l := NewLayout(g, m, f.Run)
				data, err := l.PNG()
				if err != nil {
					t.Fatal(err)
				}
				if *pngOut != "" {
					name := fmt.Sprintf("matrix_%dx%d_%d.png", size.kernels, size.compilers, m)
					os.WriteFile(filepath.Join(*pngOut, name), data, 0o644)
				}
				img, err := png.Decode(bytes.NewReader(data))
				if err != nil {
					t.Fatal(err)
				}
				b := img.Bounds()
				if b.Size() != l.Size() {
					t.Errorf("image is %v, layout says %v", b.Size(), l.Size())
				}
				// Sane: not tiny, not huge, and the cells inside the image.
				if b.Dx() < 300 || b.Dy() < 150 || b.Dx() > 8000 || b.Dy() > 8000 || len(data) > 2<<20 {
					t.Errorf("image %v, %d bytes: not a sane size", b.Size(), len(data))
				}
				for _, k := range known {
					row, col, sub, ok := g.Index(k.kernel, k.compiler, k.driver)
					if !ok {
						t.Fatalf("cell %s/%s/%s not in grid", k.compiler, k.kernel, k.driver)
					}
					want := StateOf(m, g.Cell(k.kernel, k.compiler, k.driver)).Color()
					p := l.CellCenter(row, col, sub)
					if !p.In(b) {
						t.Fatalf("cell centre %v outside the image %v", p, b)
					}
					if got := img.At(p.X, p.Y); !near(got, want) {
						t.Errorf("matrix %d: cell %s/%s/%s at %v is %v, want %v", m, k.compiler, k.kernel, k.driver, p, got, want)
					}
				}
				// Every cell of the grid has its state's colour and stays in the image.
				for r, kernel := range g.Kernels {
					for i, c := range g.Columns {
						for j, d := range c.Drivers {
							rect := l.CellRect(r, i, j)
							if !rect.In(b) || rect.Dx() < 8 || rect.Dy() < 8 {
								t.Fatalf("cell rect %v: outside %v or too small", rect, b)
							}
							want := StateOf(m, g.Cell(kernel, c.Compiler, d)).Color()
							if p := l.CellCenter(r, i, j); !near(img.At(p.X, p.Y), want) {
								t.Fatalf("matrix %d: cell %s/%s/%s at %v is %v, want %v", m, c.Compiler, kernel, d, p, img.At(p.X, p.Y), want)
							}
						}
					}
				}
			}
		})
	}
}

// TestLayoutFits checks that labels do not overlap each other or the
// cells, and that nothing runs off the image.
func TestLayoutFits(t *testing.T) {
	for _, size := range [][2]int{{3, 3}, {40, 25}} {
		g := NewGrid(synthetic(size[0], size[1]))
		l := NewLayout(g, Success, results.Run{})
		st := l.styles
		for i := 1; i < len(g.Columns); i++ {
			prev := l.CellRect(0, i-1, len(g.Columns[i-1].Drivers)-1)
			if cur := l.CellRect(0, i, 0); cur.Min.X <= prev.Max.X {
				t.Errorf("%v: column %d starts at %d, before the previous one ends at %d", size, i, cur.Min.X, prev.Max.X)
			}
		}
		// Every cell lies inside the grid area, between the column labels
		// and the legend (or the repeated labels under the grid).
		px := func(v gvg.Length) int { return int(float64(v) * DPI / 72) }
		area := image.Rect(px(l.gridLeft), px(l.gridTop), px(l.gridRight)+1, px(l.gridBottom)+1)
		for r := range g.Kernels {
			for i, c := range g.Columns {
				for j := range c.Drivers {
					if rect := l.CellRect(r, i, j); !rect.In(area) {
						t.Fatalf("%v: cell %d,%d,%d at %v is outside the grid area %v", size, r, i, j, rect, area)
					}
				}
			}
		}
		for _, k := range g.Kernels {
			if margin+st.label.Width(k) > l.gridLeft-labelPad+0.01 {
				t.Errorf("%v: kernel label %q runs into the grid", size, k)
			}
		}
		for i, c := range g.Columns {
			colW := l.subW[i] * gvg.Length(len(c.Drivers))
			if l.rotated {
				// Vertical labels: their line height must fit the
				// column pitch, their length the header.
				if h := st.label.FontExtents().Height; h > colW+groupGap {
					t.Errorf("%v: vertical label %s (%v high) overlaps its neighbours (pitch %v)", size, c.Compiler, h, colW+groupGap)
				}
				if st.label.Width(c.Compiler) > l.compH-labelPad/2 {
					t.Errorf("%v: vertical label %s longer than the header", size, c.Compiler)
				}
				for _, d := range c.Drivers {
					if st.small.FontExtents().Height > l.subW[i] || st.small.Width(d) > l.drvH-labelPad/2 {
						t.Errorf("%v: driver label %s does not fit its sub-column", size, d)
					}
				}
				continue
			}
			if w := st.label.Width(c.Compiler); w > colW {
				t.Errorf("%v: label %s (%v) wider than its column (%v)", size, c.Compiler, w, colW)
			}
			for _, d := range c.Drivers {
				if w := st.small.Width(d); w > l.subW[i] {
					t.Errorf("%v: driver label %s (%v) wider than its sub-column (%v)", size, d, w, l.subW[i])
				}
			}
		}
		if size[0] == 40 && (!l.rotated || !l.footer) {
			t.Errorf("40 kernels x 25 compilers: want vertical column labels, repeated under the grid")
		}
		lh := st.label.FontExtents().Height
		for _, e := range l.legend {
			if e.y < l.gridBottom {
				t.Errorf("%v: legend entry %q overlaps the grid", size, e.label())
			}
			if e.y+lh > l.Height-margin/2 || e.x+swatch+labelPad/2+st.label.Width(e.label()) > l.Width-margin/2 {
				t.Errorf("%v: legend entry %q runs off the image", size, e.label())
			}
		}
		if margin+st.title.Width(l.Title) > l.Width {
			t.Errorf("%v: the title runs off the image", size)
		}
		for _, n := range l.Notes {
			if margin+st.note.Width(n) > l.Width {
				t.Errorf("%v: note %q runs off the image", size, n)
			}
		}
	}
}

func near(got color.Color, want color.RGBA) bool {
	r, g, b, _ := got.RGBA()
	d := func(a uint32, b uint8) bool { return int(a>>8)-int(b) <= 3 && int(b)-int(a>>8) <= 3 }
	return d(r, want.R) && d(g, want.G) && d(b, want.B)
}
