"""Tests of the mechanisms analyses (attention, ablation, neurons, criticality, phases, attribution)."""
