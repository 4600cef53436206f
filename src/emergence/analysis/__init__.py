"""Analysis of result rows and activations: emergence across scale, scaling laws, mechanisms.

Emergence across scale (docs/emergence-analysis.md):

- `fits`: line / sigmoid / hinge in log-scale, AIC/AICc/BIC, bootstrap threshold CI
- `bigbench`: BIG-bench normalised score, total improvement, linearity, breakthroughness
- `emergence`: the per task × shots × metric analysis, mirage check, prediction, verdicts;
  `analyze_results(df, cfg)` and `analyze_study(study_dir, cfg)` write analysis.json
- `scaling`: Kaplan and Chinchilla loss-law fits

Submodules are imported on use; this package imports nothing heavy on its own.
"""
