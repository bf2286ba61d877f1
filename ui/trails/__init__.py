"""Wearers' trails: the Trail tab, asking for a trail, the replay, supervisors'
approvals, access reports and evidence exports."""
