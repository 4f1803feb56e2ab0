package models

import (
	"fmt"
	"strings"
)

// labelSynonyms pairs the COCO names with the Pascal-VOC spellings some exports and label
// files use (darknet's coco.names says "motorbike" where COCO says "motorcycle").
var labelSynonyms = map[string]string{
	"motorcycle": "motorbike", "motorbike": "motorcycle",
	"airplane": "aeroplane", "aeroplane": "airplane",
	"couch": "sofa", "sofa": "couch",
	"potted plant": "pottedplant", "pottedplant": "potted plant",
	"dining table": "diningtable", "diningtable": "dining table",
	"tv": "tvmonitor", "tvmonitor": "tv",
}

// ResolveLabel returns the class id of label, matching case-insensitively and accepting the
// COCO/VOC spellings of the same class (motorcycle/motorbike, airplane/aeroplane, couch/sofa,
// potted plant/pottedplant, dining table/diningtable, tv/tvmonitor), or -1.
func (m Manifest) ResolveLabel(label string) int {
	want := strings.ToLower(strings.TrimSpace(label))
	alt, hasAlt := labelSynonyms[want]
	for i, l := range m.Labels {
		l = strings.ToLower(l)
		if l == want || hasAlt && l == alt {
			return i
		}
	}
	return -1
}

// KeepLabels returns the class ids of labels (matched as ResolveLabel does) as a Filter.Keep
// table; empty labels keep all (nil). A label the model does not know is an error naming it.
func (m Manifest) KeepLabels(labels []string) ([]bool, error) {
	if len(labels) == 0 {
		return nil, nil
	}
	keep := make([]bool, len(m.Labels))
	for _, l := range labels {
		id := m.ResolveLabel(l)
		if id < 0 {
			return nil, fmt.Errorf("model %q has no label %q (it has %s)", m.Name, l, strings.Join(m.Labels, ", "))
		}
		keep[id] = true
	}
	return keep, nil
}
