"""What the scripts share: timing and tables, face sets, photo folders, frames, int8 files (imports only ``dan``)."""
