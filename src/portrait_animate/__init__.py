"""portrait-animate."""
