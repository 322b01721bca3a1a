"""Medical imaging: models, preprocessing and analysis."""
