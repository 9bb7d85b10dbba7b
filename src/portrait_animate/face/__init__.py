"""Face analysis: MediaPipe landmarks, crop geometry, open ratios and paste-back."""
