"""Module 04 — guiding flows as deterministic optimal control (FMRG, arXiv 2604.27147).

Foundations (lessons 04.1–04.2): ``data2d`` (2-D data with log-densities), ``cfm`` (conditional
flow matching on the linear path), ``models`` (``VelocityMLP``, ``FlowMapMLP``), ``sampling``
(``NFECounter``, Euler/midpoint ``integrate``), ``flowmap`` (teacher map, distillation),
``pretrained`` (the shipped 2-D flow that lesson 04.3 loads).

Guidance (lessons 04.3–04.5): ``guidance`` (every method behind ``guide``), ``adjoint``, ``tilt``, ``rewards``,
``metrics``, ``images`` (8×8 digits), ``full`` (diffusers flow models).

Each lesson's sizes per scale are one ``<Topic>LessonConfig`` next to the code it teaches:
``cfm.FlowMatchingLessonConfig`` (04.1), ``flowmap.FlowMapLessonConfig`` (04.2),
``guidance.GuidanceLessonConfig`` (04.3), ``images.DigitGuidanceLessonConfig`` (04.4),
``full.FullScaleLessonConfig`` (04.5).

Paper convention throughout: t = 0 is noise, t = 1 is data.
"""
from hdai_lessons.flows.cfm import cfm_loss, cfm_target, linear_path, train_cfm
from hdai_lessons.flows.data2d import Checkerboard, GaussianMixture, Moons, Rings, make_dataset
from hdai_lessons.flows.metrics import energy_distance
from hdai_lessons.flows.flowmap import TeacherFlowMap, distill_flow_map
from hdai_lessons.flows.models import FlowMapMLP, VelocityMLP
from hdai_lessons.flows.sampling import NFECounter, integrate

__all__ = [
    "Checkerboard", "FlowMapMLP", "GaussianMixture", "Moons", "NFECounter", "Rings", "TeacherFlowMap",
    "VelocityMLP", "cfm_loss", "cfm_target", "distill_flow_map", "energy_distance", "integrate",
    "linear_path", "make_dataset", "train_cfm",
]
