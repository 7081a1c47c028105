//! FinOps Foundation's `focus-validator` (PyPI 1.0.0, which checks FOCUS 1.0, whose mandatory
//! columns 1.2 keeps), as the FOCUS export's tests run it: from its site-packages folder (it
//! reads its currency list by a path relative to it), with the override file of the checks
//! it gets wrong or that do not apply (`testdata/focus/validator-1.0-overrides.yaml`, each
//! with its reason). Plain `std`, like [`crate::tool`].

use std::path::{Path, PathBuf};

/// The validator: its console script and its site-packages folder.
pub struct Validator {
    pub program: PathBuf,
    pub site: PathBuf,
}

/// `SKYMETER_FOCUS_VALIDATOR` (scripts/test sets it), else its venv in the tools cache,
/// else `focus-validator` on PATH; `Err` says how to install it.
pub fn find() -> Result<Validator, String> {
    let program =
        crate::tool::venv_program("SKYMETER_FOCUS_VALIDATOR", "venv-focus", "focus-validator")
            .ok_or(
            "focus-validator is not installed (PyPI `focus-validator==1.0.0` with `multimethod<2` \
             and `pyarrow<18`; scripts/test installs it and sets SKYMETER_FOCUS_VALIDATOR)",
        )?;
    let python = program.with_file_name("python3");
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            "import focus_validator, os; print(os.path.dirname(os.path.dirname(focus_validator.__file__)))",
        ])
        .output()
        .map_err(|e| format!("running {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} cannot import focus_validator: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let site = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    Ok(Validator { program, site })
}

/// What one run said: its output, and the names of the checks that failed.
pub struct Report {
    pub text: String,
    pub failed: Vec<String>,
    pub succeeded: bool,
}

impl Validator {
    /// Validates `file` (`.csv` or `.parquet`) with `--validate-version 1.0` and the
    /// repository's override file. Panics when the validator cannot run at all.
    pub fn validate(&self, file: &Path) -> Report {
        let overrides = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/focus/validator-1.0-overrides.yaml");
        let out = std::process::Command::new(&self.program)
            .current_dir(&self.site)
            .arg("--data-file")
            .arg(file)
            .args(["--validate-version", "1.0", "--override-file"])
            .arg(&overrides)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.program.display()));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "focus-validator on {}: {text}",
            file.display()
        );
        let failed = text
            .lines()
            .filter_map(|l| l.strip_suffix(" failed:"))
            .map(str::to_string)
            .collect();
        Report {
            succeeded: text.contains("Validation succeeded."),
            text,
            failed,
        }
    }
}
