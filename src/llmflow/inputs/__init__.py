"""Reading inputs: emails (.eml, mbox, folders) into batch items."""
