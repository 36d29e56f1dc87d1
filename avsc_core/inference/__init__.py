"""Running trained models: backbones, fusion heads, and whole files."""
