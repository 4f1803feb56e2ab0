package score

import (
	"bytes"
	"testing"

	"github.com/vigil-edge/vigil/models"
)

func TestWriteMOT(t *testing.T) {
	rows := []MOTRow{
		{Frame: 2, ID: 7, Box: Object{Box: models.Box{X1: 10, Y1: 20, X2: 40, Y2: 100}}, Score: 0.5},
		{Frame: 1, ID: 9, Box: Object{Box: models.Box{X1: 0.5, Y1: 1, X2: 2, Y2: 3.25}}, Score: 0.875},
		{Frame: 1, ID: 3, Box: Object{Box: models.Box{X1: 1, Y1: 2, X2: 4, Y2: 6}}, Score: 1},
	}
	var buf bytes.Buffer
	if err := WriteMOT(&buf, rows); err != nil {
		t.Fatal(err)
	}
	want := "1,3,1.00,2.00,3.00,4.00,1.0000,-1,-1,-1\n" +
		"1,9,0.50,1.00,1.50,2.25,0.8750,-1,-1,-1\n" +
		"2,7,10.00,20.00,30.00,80.00,0.5000,-1,-1,-1\n"
	if buf.String() != want {
		t.Fatalf("got\n%swant\n%s", buf.String(), want)
	}
	if rows[0].Frame != 2 {
		t.Fatal("WriteMOT reordered the caller's slice")
	}
}
