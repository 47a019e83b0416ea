"""Tests of vaerans_ecs.systems.residual."""
