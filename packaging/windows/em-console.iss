; Inno Setup 6 script for the Windows installer of the onedir bundle.
; Build dist\em-console\ first (make bundle, or pyinstaller build.spec on Windows), then:
;   iscc /DAppVersion=0.1.0 packaging\windows\em-console.iss
; Signing: see packaging\README.md.

#ifndef AppVersion
  #error Pass the version from pyproject.toml: iscc /DAppVersion=X.Y.Z
#endif

[Setup]
; Never change AppId: it is how an upgrade or uninstall finds an earlier install.
AppId={{AB4F8C3F-7ABC-4521-8C49-03EF9F2083CB}
AppName=EM Console
AppVersion={#AppVersion}
AppPublisher=EM Console
VersionInfoVersion={#AppVersion}
; Per machine: installed once by an administrator for every operator.
PrivilegesRequired=admin
DefaultDirName={autopf}\EM Console
DefaultGroupName=EM Console
DisableProgramGroupPage=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=em-console-{#AppVersion}-windows-x64-setup
SetupIconFile=..\..\resources\icons\em-console.ico
UninstallDisplayIcon={app}\em-console.exe
Compression=lzma2/max
SolidCompression=yes
; An upgrade or uninstall waits for running consoles to close.
CloseApplications=yes
; Uncomment once a code-signing certificate is set up (packaging\README.md):
; SignTool=emsign
; SignedUninstaller=yes

[Files]
Source: "..\..\dist\em-console\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\EM Console"; Filename: "{app}\em-console.exe"

[UninstallDelete]
; Everything under the install folder goes, including files written after install.
; Operators' caches in %LOCALAPPDATA%\em-console stay: they may hold actions
; that have not reached the backend yet.
Type: filesandordirs; Name: "{app}"
