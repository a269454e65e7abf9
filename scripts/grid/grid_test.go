package grid

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The original suite's grid must parse verbatim.
func TestReferenceGrid(t *testing.T) {
	g, err := Load(filepath.Join("..", "..", "examples", "kernels-original.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ uname, vm string }{
		{"5.4.231-1.el7.elrepo.x86_64", "centos7"},
		{"5.10.16-1.el7.elrepo.x86_64", "centos7"},
		{"5.14.15-1.el7.elrepo.x86_64", "centos7"},
		{"6.1.12-1.el7.elrepo.x86_64", "centos7"},
		{"4.16.18-041618-generic", "ubuntu"},
		{"4.19.277-0419277-generic", "ubuntu"},
		{"5.19.17-051917-generic", "ubuntu"},
		{"6.2.6-060206-generic", "ubuntu"},
	}
	if len(g.Kernels) != len(want) {
		t.Fatalf("got %d kernels, want %d", len(g.Kernels), len(want))
	}
	for i, k := range g.Kernels {
		if k.UnameR() != want[i].uname || k.VM != want[i].vm || k.Line != i+1 || k.Name != want[i].uname {
			t.Errorf("line %d: uname %q vm %q name %q, want %q %q", k.Line, k.UnameR(), k.VM, k.Name, want[i].uname, want[i].vm)
		}
		for _, r := range append(k.Headers, k.Kernels...) {
			if r.Kind != URL {
				t.Errorf("line %d: %s is not a URL ref", k.Line, r.Raw)
			}
		}
	}
	if n := len(g.Kernels[4].Kernels); n != 2 {
		t.Errorf("ubuntu line has %d kernel packages, want image + modules", n)
	}
}

func TestAptAndLocalRefs(t *testing.T) {
	text := `# comment

{"name": "deb13-7.3", "headers": ["apt:trixie-backports/linux-headers-7.3.4+deb13-cloud-amd64=7.3.4-1~bpo13+1", "apt:linux-kbuild-7.3.4+deb13"], "kernels": ["apt:trixie-backports/linux-binary-7.3.4+deb13-cloud-amd64", "apt:trixie-backports/linux-modules-7.3.4+deb13-cloud-amd64"]}
  {"headers": ["pkgs/kernel-devel-3.10.0-1160.el7.x86_64.rpm"], "kernels": ["file:///srv/kernel-3.10.0-1160.el7.x86_64.rpm"], "vm": "centos7-custom"}
`
	g, err := Parse(strings.NewReader(text), "/grids/kernels.txt")
	if err != nil {
		t.Fatal(err)
	}
	k := g.Kernels[0]
	h := k.Headers[0]
	if k.Line != 3 || k.Name != "deb13-7.3" || k.VM != "debian" || k.UnameR() != "7.3.4+deb13-cloud-amd64" {
		t.Errorf("apt kernel: %+v uname %q", k, k.UnameR())
	}
	if h.Kind != Apt || h.Suite != "trixie-backports" || h.Package != "linux-headers-7.3.4+deb13-cloud-amd64" || h.Version != "7.3.4-1~bpo13+1" {
		t.Errorf("apt ref: %+v", h)
	}
	if r := k.Headers[1]; r.Suite != "" || r.Version != "" || r.Package != "linux-kbuild-7.3.4+deb13" {
		t.Errorf("suite-less apt ref: %+v", r)
	}
	k = g.Kernels[1]
	if k.Line != 4 || k.VM != "centos7-custom" || k.UnameR() != "3.10.0-1160.el7.x86_64" || k.Name != "3.10.0-1160.el7.x86_64" {
		t.Errorf("rpm kernel: %+v uname %q", k, k.UnameR())
	}
	if k.Headers[0].Kind != File || k.Headers[0].Path != "/grids/pkgs/kernel-devel-3.10.0-1160.el7.x86_64.rpm" {
		t.Errorf("relative path not anchored at the grid: %+v", k.Headers[0])
	}
	if k.Kernels[0].Kind != File || k.Kernels[0].Path != "/srv/kernel-3.10.0-1160.el7.x86_64.rpm" {
		t.Errorf("file URL: %+v", k.Kernels[0])
	}
}

func TestMalformedLines(t *testing.T) {
	ok := `{"headers": ["apt:linux-headers-6.1.0-50-cloud-amd64"], "kernels": ["apt:linux-image-6.1.0-50-cloud-amd64"]}`
	cases := map[string]struct{ line, want string }{
		"not json":          {`headers: x`, "not a JSON object"},
		"unterminated":      {`{"headers": ["a.deb"]`, "not a JSON object"},
		"array":             {`["a.deb"]`, "must be a JSON object"},
		"two objects":       {ok + ` {}`, "extra text"},
		"trailing garbage":  {ok + `,`, "extra text"},
		"unknown field":     {`{"header": ["x.deb"], "kernels": ["y.deb"]}`, `unknown field "header"`},
		"no headers":        {`{"kernels": ["apt:linux-image-6.1.0-50-cloud-amd64"]}`, `"headers" is missing`},
		"empty kernels":     {`{"headers": ["apt:linux-headers-x"], "kernels": []}`, `"kernels" is missing or empty`},
		"headers string":    {`{"headers": "a.deb", "kernels": ["b.deb"]}`, `"headers" must be a list`},
		"number ref":        {`{"headers": [1], "kernels": ["b.deb"]}`, `must be a list`},
		"name number":       {`{"name": 5, "headers": ["a.deb"], "kernels": ["b.deb"]}`, `"name" must be a string`},
		"bad name":          {`{"name": "a b", "headers": ["a.deb"], "kernels": ["b.deb"]}`, `"name" "a b"`},
		"bad vm":            {`{"vm": "Cent OS", "headers": ["a.deb"], "kernels": ["b.deb"]}`, `"vm" "Cent OS"`},
		"bad arch":          {`{"arch": "aarch64", "headers": ["a.deb"], "kernels": ["b.deb"]}`, `"arch" "aarch64": want one of amd64, arm64`},
		"arch number":       {`{"arch": 64, "headers": ["a.deb"], "kernels": ["b.deb"]}`, `"arch" must be a string`},
		"empty ref":         {`{"headers": [""], "kernels": ["b.deb"]}`, `headers[0] "": empty reference`},
		"ftp":               {`{"headers": ["ftp://h/a.deb"], "kernels": ["b.deb"]}`, `unknown scheme "ftp"`},
		"url no file":       {`{"headers": ["https://h/dir/"], "kernels": ["b.deb"]}`, `end in a package file name`},
		"url no host":       {`{"headers": ["https:///a.deb"], "kernels": ["b.deb"]}`, `must have a host`},
		"not a package":     {`{"headers": ["https://h/a.tar.gz"], "kernels": ["b.deb"]}`, `must end in .deb or .rpm`},
		"apt empty":         {`{"headers": ["apt:"], "kernels": ["b.deb"]}`, `bad package name ""`},
		"apt empty suite":   {`{"headers": ["apt:/linux-headers-x"], "kernels": ["b.deb"]}`, `bad suite ""`},
		"apt upper":         {`{"headers": ["apt:Linux-Headers"], "kernels": ["b.deb"]}`, `bad package name "Linux-Headers"`},
		"apt empty version": {`{"headers": ["apt:bookworm/linux-headers-x="], "kernels": ["b.deb"]}`, `bad version ""`},
		"apt two slashes":   {`{"headers": ["apt:bookworm/x/y"], "kernels": ["b.deb"]}`, `bad package name "x/y"`},
		"duplicate ref":     {`{"headers": ["a.deb", "a.deb"], "kernels": ["b.deb"]}`, `headers[1] "a.deb": listed twice`},
		"bad file url":      {`{"headers": ["file://host/a.deb"], "kernels": ["b.deb"]}`, `bad file:// URL`},
		"spaces":            {`{"headers": [" a.deb"], "kernels": ["b.deb"]}`, `surrounding spaces`},
		"key case":          {`{"Headers": ["a.deb"], "kernels": ["b.deb"]}`, `unknown field "Headers"`},
		"null":              {`null`, `not null`},
		"no package name":   {`{"headers": [".deb"], "kernels": ["b.deb"]}`, `no package name`},
		"bad fragment":      {`{"headers": ["https://h/a.deb#md5=00"], "kernels": ["b.deb"]}`, `bad fragment #md5=00 (want #sha256=<64 hex digits>)`},
		"short digest":      {`{"headers": ["file:///a.deb#sha256=abc"], "kernels": ["b.deb"]}`, `want #sha256=<64 hex digits>`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			text := "# grid\n" + ok + "\n\n" + c.line + "\n" + ok + "\n"
			_, err := Parse(strings.NewReader(text), "/x/kernels.txt")
			if err == nil {
				t.Fatal("malformed line accepted")
			}
			if !strings.HasPrefix(err.Error(), "kernels.txt:4: ") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %q, want kernels.txt:4: ...%s...", err, c.want)
			}
		})
	}
}

func TestPinnedDigests(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	g, err := Parse(strings.NewReader(`{"headers": ["https://h/p/linux-headers-6.1.0-50-cloud-amd64_6.1.176-1_amd64.deb#sha256=`+strings.ToUpper(sum)+`", "apt:bookworm/linux-kbuild-6.1"], "kernels": ["file:///k/linux-image-6.1.0-50-cloud-amd64_6.1.176-1_amd64.deb#sha256=`+sum+`", "/k/other.deb"]}`+"\n"), "/x/kernels.txt")
	if err != nil {
		t.Fatal(err)
	}
	h, k := g.Kernels[0].Headers, g.Kernels[0].Kernels
	if h[0].URL != "https://h/p/linux-headers-6.1.0-50-cloud-amd64_6.1.176-1_amd64.deb" || h[0].SHA256 != sum || !h[0].Verifiable() {
		t.Errorf("pinned URL: %+v", h[0])
	}
	if h[0].Name() != "linux-headers-6.1.0-50-cloud-amd64" {
		t.Errorf("name of a pinned URL: %q", h[0].Name())
	}
	if !h[1].Verifiable() || h[1].SHA256 != "" {
		t.Errorf("apt reference: %+v", h[1])
	}
	if k[0].Path != "/k/linux-image-6.1.0-50-cloud-amd64_6.1.176-1_amd64.deb" || k[0].SHA256 != sum {
		t.Errorf("pinned file: %+v", k[0])
	}
	if k[1].Verifiable() {
		t.Errorf("a plain path is not verifiable: %+v", k[1])
	}
}

func TestDuplicateNamesAndEmptyGrid(t *testing.T) {
	l := `{"headers": ["apt:linux-headers-6.1.0-50-cloud-amd64"], "kernels": ["apt:linux-image-6.1.0-50-cloud-amd64"]}`
	_, err := Parse(strings.NewReader(l+"\n"+l+"\n"), "kernels.txt")
	if err == nil || !strings.Contains(err.Error(), "kernels.txt:2: name \"6.1.0-50-cloud-amd64\" is already used on line 1") {
		t.Errorf("duplicate: %v", err)
	}
	_, err = Parse(strings.NewReader("# only comments\n\n"), "kernels.txt")
	if err == nil || !strings.Contains(err.Error(), "no kernels") {
		t.Errorf("empty: %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.txt")); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing file: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

// The repository's own grids must parse and name the kernels they claim.
func TestRepositoryGrids(t *testing.T) {
	for file, unames := range map[string][]string{
		// Meta packages name no kernel release: the kernel stage learns it
		// from the packages they bring.
		"../../kernels.txt":                        {"", "", "", "", "", "", ""},
		"../../testdata/grids/ci.txt":              {"", ""},
		"../../examples/kernels-debian-pinned.txt": {"5.10.0-32-cloud-amd64", "6.1.0-50-cloud-amd64", "6.12.117+deb13-cloud-amd64", "7.3.4+deb13-cloud-amd64"},
		"../../examples/kernels-original.txt":      nil,
	} {
		g, err := Load(file)
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		if unames == nil {
			if len(g.Kernels) != 8 {
				t.Errorf("%s: %d kernels, want 8", file, len(g.Kernels))
			}
			continue
		}
		var got []string
		for _, k := range g.Kernels {
			got = append(got, k.UnameR())
			if k.VM != "debian" {
				t.Errorf("%s:%d: vm %q", file, k.Line, k.VM)
			}
		}
		if strings.Join(got, " ") != strings.Join(unames, " ") {
			t.Errorf("%s: kernels %v, want %v", file, got, unames)
		}
	}
}

// A line may name its architecture; the default is amd64.
func TestArch(t *testing.T) {
	g, err := Parse(strings.NewReader(`{"headers": ["apt:linux-headers-cloud-amd64"], "kernels": ["apt:linux-image-cloud-amd64"]}
{"name": "a", "arch": "arm64", "headers": ["apt:bookworm/linux-headers-cloud-arm64"], "kernels": ["apt:bookworm/linux-image-cloud-arm64"]}
`), "kernels.txt")
	if err != nil {
		t.Fatal(err)
	}
	if g.Kernels[0].Arch != "amd64" || g.Kernels[1].Arch != "arm64" {
		t.Errorf("arches %q, %q", g.Kernels[0].Arch, g.Kernels[1].Arch)
	}
	if got := strings.Join(g.Arches(), ","); got != "amd64,arm64" {
		t.Errorf("Arches() = %s", got)
	}
	if got := strings.Join(FileArches(filepath.Join(t.TempDir(), "missing.txt")), ","); got != "amd64" {
		t.Errorf("FileArches of a missing file = %s", got)
	}
}
