package auth

import "testing"

func TestACL(t *testing.T) {
	for _, tt := range []struct {
		role  Role
		name  string
		topic string
		write bool
		want  bool
	}{
		{RoleDevice, "edge-a", "vigil/v1/edge-a/status", true, true},
		{RoleDevice, "edge-a", "vigil/v1/edge-a/detections/gate", true, true},
		{RoleDevice, "edge-a", "vigil/v1/edge-a/cmd_result/model_update", true, true},
		{RoleDevice, "edge-a", "vigil/v1/edge-a/cmd/model_update", true, false},
		{RoleDevice, "edge-a", "vigil/v1/edge-a/cmd", true, false},
		{RoleDevice, "edge-a", "vigil/v1/edge-b/status", true, false},
		{RoleDevice, "edge-a", "vigil/v1/edge-ab/status", true, false},
		{RoleDevice, "edge-a", "other/topic", true, false},
		{RoleDevice, "edge-a", "vigil/v1/edge-a/cmd/#", false, true},
		{RoleDevice, "edge-a", "vigil/v1/edge-a/cmd/model_update", false, true},
		{RoleDevice, "edge-a", "vigil/v1/edge-a/#", false, false},
		{RoleDevice, "edge-a", "vigil/v1/+/cmd/#", false, false},
		{RoleDevice, "edge-a", "vigil/v1/edge-b/cmd/#", false, false},
		{RoleDevice, "edge-a", "$share/g/vigil/v1/edge-a/cmd/#", false, false},
		{RoleDevice, "edge-a", "#", false, false},
		{RoleFleet, "vigil-fleet", "#", false, true},
		{RoleFleet, "vigil-fleet", "vigil/v1/edge-a/cmd/model_update", true, true},
		{RoleFleet, "vigil-fleet", "vigil/v1/+/cmd/model_update", true, false},
		{RoleFleet, "vigil-fleet", "vigil/v1/edge-a/cmd/", true, false},
		{RoleFleet, "vigil-fleet", "vigil/v1/edge-a/status", true, false},
		{RoleNone, "x", "vigil/v1/x/status", true, false},
		{RoleNone, "x", "vigil/v1/x/cmd/#", false, false},
	} {
		if got := allowed(tt.role, tt.name, tt.topic, tt.write); got != tt.want {
			t.Errorf("role %d %s write=%v %s: %v, want %v", tt.role, tt.name, tt.write, tt.topic, got, tt.want)
		}
	}
}
