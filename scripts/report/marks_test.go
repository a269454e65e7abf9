package report

import (
	"bytes"
	"fmt"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

// factsFile is a grid with kernel facts: 6.1 built with gcc-12, an RT
// 6.12 built with gcc-14, and a 7.3 built with a gcc-13 that no builder
// has, whose kmod gcc-14 stands in for.
func factsFile() *results.File {
	f := &results.File{}
	const k61, k612, k73 = "6.1.0-50-cloud-amd64", "6.12.117+deb13-rt-amd64", "7.3.4+deb13-cloud-amd64"
	base := results.KernelFacts{BTF: true, BPFJIT: true, SyscallTracepoints: true}
	for k, mod := range map[string]func(*results.KernelFacts){
		k61:  func(f *results.KernelFacts) { f.Compiler = "gcc-12" },
		k612: func(f *results.KernelFacts) { f.Compiler, f.PreemptRT = "gcc-14", true },
		k73:  func(f *results.KernelFacts) { f.Compiler = "gcc-13" },
	} {
		facts := base
		mod(&facts)
		f.SetKernel(results.Kernel{Kernel: k, Facts: &facts})
	}
	ok := func(forKernel string) *results.Compile {
		return &results.Compile{Status: results.CompileOK, ForKernel: forKernel}
	}
	f.Cells = []results.Cell{
		{Kernel: k61, Compiler: "gcc-12", Driver: "kmod", Compile: ok("gcc-12")},
		{Kernel: k612, Compiler: "gcc-12", Driver: "kmod", Compile: &results.Compile{Status: results.CompileFail,
			Reason: "gcc-12: error: unrecognized command-line option '-fmin-function-alignment=16'; gcc-12 is older than the kernel's own gcc-14"}},
		{Kernel: k612, Compiler: "gcc-14", Driver: "kmod", Compile: ok("gcc-14")},
		{Kernel: k73, Compiler: "gcc-14", Driver: "kmod", Compile: ok("gcc-13")},
	}
	for _, k := range []string{k61, k612, k73} {
		f.Cells = append(f.Cells, results.Cell{Kernel: k, Compiler: "clang-19", Driver: "bpf", Compile: ok("")})
	}
	f.Sort()
	return f
}

func TestMarkdownMarks(t *testing.T) {
	f := factsFile()
	md := Markdown(f, nil, true)
	for _, want := range []string{
		// The legend says what the marks are.
		"`*` kernel's own compiler · `+` newer, standing in for the kernel's own.",
		"| kernel | own compiler · facts | gcc-12 kmod | gcc-14 kmod | clang-19 bpf |",
		// Each kernel's row: its facts, and its own compiler's cell marked.
		"| 6.1.0-50-cloud-amd64 | gcc-12 · BTF | 🔵* |  | 🔵 |",
		"| 6.12.117+deb13-rt-amd64 | gcc-14 · BTF · RT | [❌](#fail-gcc-12-6-12-117-deb13-rt-amd64-kmod) | 🔵* | 🔵 |",
		"| 7.3.4+deb13-cloud-amd64 | gcc-13 · BTF |  | 🔵+ | 🔵 |",
		// The stand-in is explained, and the failure names the older compiler.
		"- gcc-14 · 7.3.4+deb13-cloud-amd64: the kernel's own gcc-13 is in no builder image; built with the nearest newer, gcc-14",
		"gcc-12 is older than the kernel's own gcc-14`",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	// Without facts (results of an older run), no facts column and no marks.
	f.Kernels = nil
	for _, c := range f.Cells {
		if c.Compile != nil {
			c.Compile.ForKernel = ""
		}
	}
	md = Markdown(f, nil, false)
	if strings.Contains(md, "own compiler") || strings.Contains(md, "🔵*") || strings.Contains(md, "🔵+") {
		t.Errorf("marks without facts:\n%s", md)
	}
}

func TestPNGMarks(t *testing.T) {
	f := factsFile()
	g := NewGrid(f)
	l := NewLayout(g, Compiled, f.Run)
	data, err := l.PNG()
	if err != nil {
		t.Fatal(err)
	}
	if *pngOut != "" {
		os.WriteFile(filepath.Join(*pngOut, "matrix_marks.png"), data, 0o644)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	dark := func(c color.Color) bool {
		r, g, b, _ := c.RGBA()
		return r>>8 < 0x40 && g>>8 < 0x40 && b>>8 < 0x40
	}
	for _, tc := range []struct {
		kernel, compiler, driver string
		mark                     Mark
	}{
		{"6.1.0-50-cloud-amd64", "gcc-12", "kmod", MarkOwn},
		{"6.12.117+deb13-rt-amd64", "gcc-14", "kmod", MarkOwn},
		{"6.12.117+deb13-rt-amd64", "gcc-12", "kmod", MarkNone},
		{"7.3.4+deb13-cloud-amd64", "gcc-14", "kmod", MarkStandIn},
		{"6.1.0-50-cloud-amd64", "clang-19", "bpf", MarkNone},
	} {
		t.Run(fmt.Sprintf("%s/%s", tc.compiler, tc.kernel), func(t *testing.T) {
			if m := g.MarkOf(g.Cell(tc.kernel, tc.compiler, tc.driver)); m != tc.mark {
				t.Fatalf("mark %v, want %v", m, tc.mark)
			}
			row, col, sub, _ := g.Index(tc.kernel, tc.compiler, tc.driver)
			r := l.CellRect(row, col, sub)
			// The left edge, one pixel in: the outline, dashed or not,
			// is dark along it; an unmarked cell keeps its colour.
			n := 0
			for y := r.Min.Y + 1; y < r.Max.Y-1; y++ {
				if dark(img.At(r.Min.X+1, y)) {
					n++
				}
			}
			h := r.Dy() - 2
			switch tc.mark {
			case MarkOwn:
				if n < h-1 {
					t.Errorf("own compiler: %d of %d edge pixels dark, want a solid outline", n, h)
				}
			case MarkStandIn:
				if n < h/4 || n > h-2 {
					t.Errorf("stand-in: %d of %d edge pixels dark, want a dashed outline", n, h)
				}
			default:
				if n > 0 {
					t.Errorf("unmarked cell: %d dark edge pixels", n)
				}
			}
			want := StateOf(Compiled, g.Cell(tc.kernel, tc.compiler, tc.driver)).Color()
			if p := l.CellCenter(row, col, sub); !near(img.At(p.X, p.Y), want) {
				t.Errorf("centre %v is %v, want the state's colour %v", p, img.At(p.X, p.Y), want)
			}
		})
	}
	// The legend explains both marks, and the facts labels stay clear of
	// the kernel labels and the grid.
	var marks []Mark
	for _, e := range l.legend {
		if e.mark != MarkNone {
			marks = append(marks, e.mark)
		}
	}
	if fmt.Sprint(marks) != fmt.Sprint([]Mark{MarkOwn, MarkStandIn}) {
		t.Errorf("legend marks %v", marks)
	}
	for _, k := range g.Kernels {
		if l.factsLeft < l.kernelRight || l.factsLeft+l.styles.small.Width(g.FactsLabel(k)) > l.gridLeft-labelPad+0.01 {
			t.Errorf("facts label of %s overlaps the kernel label or the grid", k)
		}
	}
}

// With an arm64 kernel in the grid, every row says its architecture (the
// host's rows first), and so does every JUnit class name.
func TestMultiArchRows(t *testing.T) {
	f := factsFile()
	const a61 = "6.1.0-50-cloud-arm64"
	facts := results.KernelFacts{Compiler: "gcc-12", BTF: true, BPFJIT: true, SyscallTracepoints: true}
	f.SetKernel(results.Kernel{Kernel: a61, Arch: "arm64", Facts: &facts})
	f.Cells = append(f.Cells, results.Cell{Kernel: a61, Arch: "arm64", Compiler: "gcc-12", Driver: "kmod",
		Compile: &results.Compile{Status: results.CompileOK}})
	f.Sort()
	md := Markdown(f, nil, true)
	for _, want := range []string{
		"| kernel | arch · own compiler · facts | gcc-12 kmod | gcc-14 kmod | clang-19 bpf |",
		"| 6.1.0-50-cloud-amd64 | amd64 · gcc-12 · BTF | 🔵* |  | 🔵 |",
		"| 7.3.4+deb13-cloud-amd64 | amd64 · gcc-13 · BTF |  | 🔵+ | 🔵 |\n| 6.1.0-50-cloud-arm64 | arm64 · gcc-12 · BTF | 🔵* |  |  |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	b, err := JUnit(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`classname="compile.arm64.kmod" name="gcc-12/`+a61+`/kmod"`)) ||
		!bytes.Contains(b, []byte(`classname="compile.amd64.bpf"`)) {
		t.Errorf("JUnit class names do not say the architecture:\n%s", b)
	}
	// An amd64-only grid keeps its rows as they were.
	if md := Markdown(factsFile(), nil, true); strings.Contains(md, "arch ·") || strings.Contains(md, "| amd64 ·") {
		t.Errorf("amd64-only Markdown names the architecture:\n%s", md)
	}
}
