"""What the scripts share: timing and tables, face sets, photo folders, frame sources, int8 files (imports only ``dan``)."""
