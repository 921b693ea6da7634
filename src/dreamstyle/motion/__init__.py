"""Motion for video: frames in (PyAV, Pillow), optical flow and its consistency mask (OpenCV); torch-free."""
